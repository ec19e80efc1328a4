"""The contract's files: tolerant reading of train and val rows, and the results file.

    train = read_train(Path("train.jsonl"))   # usable rows; bad ones skipped with a warning
    val = read_val(Path("val.jsonl"))         # every row with an id, even with no usable ticket

Only an unreadable file, or a training file with no usable row, is fatal (one line, exit code 2).
Everything else is a warning on stderr and a result: one bad row never costs the other rows.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import fail
from core.io import iter_jsonl

TRAIN_FIELDS = ("id", "ticket", "intent", "ideal_reply")
LABEL_FIELDS = ("intent", "ideal_reply", "reply", "label")
# A paraphrase of training row `x` is row `x~p` (`x~p2`, ... for more): one group with its source.
PARAPHRASE_ID = re.compile(r"~p\d*$")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class TrainRow:
    id: str
    ticket: str
    intent: str  # exactly as spelled in the file: predictions must use this spelling
    reply: str

    @property
    def group(self) -> str:
        """The source row's id: a paraphrase is never evidence about, or a neighbour of, its own source."""
        return PARAPHRASE_ID.sub("", self.id)

    @property
    def is_paraphrase(self) -> bool:
        return self.group != self.id


def paraphrase_id(source_id: str, taken: set[str]) -> str:
    """`<source>~p`, or `~p2`, `~p3`, ... when that id is taken."""
    candidate, n = f"{source_id}~p", 1
    while candidate in taken:
        n += 1
        candidate = f"{source_id}~p{n}"
    return candidate


@dataclass(frozen=True)
class ValRow:
    id: Any  # as given (a number stays a number), so the grader can match it
    ticket: str  # "" when the row has no usable ticket


def _objects(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line that holds a JSON object; other lines are warned about."""
    return list(iter_jsonl(path, on_bad_line=lambda message: warn(f"{message}; row skipped")))


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def read_train(path: Path) -> list[TrainRow]:
    """Usable training rows, first occurrence of each id and of each ticket text kept."""
    rows: list[TrainRow] = []
    seen_ids: dict[str, int] = {}
    seen_tickets: set[str] = set()
    for lineno, obj in _objects(path):
        missing = [f for f in TRAIN_FIELDS if f not in obj]
        if missing:
            warn(f"{path}:{lineno}: missing field '{missing[0]}'; row skipped")
            continue
        bad = next((f for f in ("ticket", "intent", "ideal_reply") if not _text(obj[f])), None)
        if bad:
            warn(f"{path}:{lineno}: field '{bad}' must be a non-empty string; row skipped")
            continue
        row_id = str(obj["id"])
        if row_id in seen_ids:
            warn(f"{path}:{lineno}: duplicate id '{row_id}' (first on line {seen_ids[row_id]}); row skipped")
            continue
        seen_ids[row_id] = lineno
        ticket = _text(obj["ticket"])
        if ticket.casefold() in seen_tickets:
            warn(f"{path}:{lineno}: ticket repeats an earlier training ticket; row skipped")
            continue
        seen_tickets.add(ticket.casefold())
        rows.append(TrainRow(row_id, ticket, obj["intent"].strip(), obj["ideal_reply"].strip()))
    if not rows:
        fail(f"{path}: no usable training row (each needs {', '.join(TRAIN_FIELDS)})")
    counts = Counter(r.intent for r in rows)
    if len(counts) == 1:
        warn(f"{path}: every training row has intent '{rows[0].intent}'; it will be predicted for every val row")
    return rows


def read_val(path: Path) -> list[ValRow]:
    """Every val row that has an id; a row without a usable ticket still gets a (fallback) prediction."""
    rows: list[ValRow] = []
    seen: dict[str, int] = {}
    leaked: set[str] = set()
    for lineno, obj in _objects(path):
        if obj.get("id") is None or obj.get("id") == "":
            warn(f"{path}:{lineno}: no 'id'; row skipped (a prediction could not be matched to it)")
            continue
        key = json.dumps(obj["id"])
        if key in seen:
            warn(f"{path}:{lineno}: duplicate id {key} (first on line {seen[key]}); both rows are predicted")
        seen[key] = lineno
        ticket = _text(obj.get("ticket"))
        if not ticket:
            warn(f"{path}:{lineno}: no usable 'ticket'; predicting the most common intent and a generic reply")
        leaked.update(f for f in LABEL_FIELDS if f in obj)
        rows.append(ValRow(obj["id"], ticket))
    if leaked:
        warn(f"{path}: val rows carry {', '.join(sorted(leaked))}; ignored (predictions never read them)")
    if not rows:
        warn(f"{path}: no val row with an id; the results will hold no predictions")
    return rows
