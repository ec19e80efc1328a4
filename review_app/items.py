"""An item as the app and the export see it: the original record, the version it shows, its phase.

    item = store.claim("ana")
    item.phase    # 'independent' (shown the original alone), 'tiebreak', 'adjudication', '' when resolved
    item.view     # pass back with the vote: store.decide(item.id, "ana", "approve", view=item.view)
    label_field("support_intent")  # 'intent': the field the queue and the page call the label

Also what a queued record's row is made of (`item_row`): its claimed label, doubt and seeded order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import select

from core.errors import UserError
from core.records import Record
from review_app.resolve import original_version, phase_of, view_of
from review_app.schema import decisions, items


@dataclass(frozen=True)
class Item:
    """A queued item as it stands: the original `record` and the `version` it shows (`text`, `labels`):
    the original until it resolves, then the winning version (proposed by `proposed_by`)."""

    id: int
    record: Record
    status: str
    doubt: float
    needed: int
    decided: int
    label: str  # the generator's claimed label (what the queue filters on)
    flags: tuple[str, ...]
    version: str = ""
    text: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    proposed_by: str = ""  # who proposed the version shown; "" for the original
    base_needed: int = 1  # independent decisions asked for at enqueue
    revision: int = 0

    @property
    def is_original(self) -> bool:
        return not self.proposed_by

    @property
    def phase(self) -> str:
        return phase_of(self.status, self.decided, self.base_needed)

    @property
    def view(self) -> str:
        return view_of(self.status, self.decided, self.base_needed, self.revision)


_shown = decisions.alias("shown")
# Items with the content of the version they show (NULL proposal: the original record).
ITEMS = select(items, _shown.c.text_after.label("shown_text"), _shown.c.labels_after_json.label("shown_labels"),
               _shown.c.annotator.label("shown_by")).outerjoin(_shown, _shown.c.id == items.c.version_decision)


def to_item(row: Any) -> Item:
    record = Record.model_validate_json(row["record_json"])
    if row["shown_by"] is None:
        text, labels, by = record.text, dict(record.labels), ""
    else:
        text, labels, by = row["shown_text"], json.loads(row["shown_labels"]), row["shown_by"]
    return Item(id=row["id"], record=record, status=row["status"], doubt=row["doubt"], needed=row["needed"],
                decided=row["decided"], label=row["label"], flags=tuple(f for f in row["flags"].split(",") if f),
                version=row["version"], text=text, labels=labels, proposed_by=by, base_needed=row["base_needed"],
                revision=row["revision"])


@cache
def label_field(task: str) -> str:
    """The task's label field ("label", "intent"); 'label' when the task is not a built-in one."""
    try:
        from core.tasks import load_task

        return load_task(task).label_name
    except UserError:
        return "label"


def primary_label(record: Record) -> str:
    name = label_field(record.task)
    return record.labels.get(name) or next(iter(record.labels.values()), "")


def doubt_of(record: Record) -> float:
    value = record.meta.get("doubt")
    try:
        return min(1.0, max(0.0, float(value))) if value is not None else 0.5
    except (TypeError, ValueError):
        return 0.5


def unit(key: str) -> float:
    """A deterministic number in [0, 1) from a string (seeded choices without a global RNG)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def item_row(record: Record, *, reviews: int, double_fraction: float, seed: int, source_file: str,
             now: float) -> dict[str, Any]:
    """The `items` row a record is queued as: the columns the queue filters and sorts on, and its
    state before any vote (`reviews` decisions needed, or 2 for a seeded `double_fraction`)."""
    provenance = record.provenance
    sampling = provenance.get("sampling")
    strategy = sampling.get("strategy", "") if isinstance(sampling, dict) else str(sampling or "")
    failed = [v.name for v in record.verdicts if not v.passed]
    original = original_version(record).id
    needed = 2 if reviews == 2 or unit(f"double:{seed}:{record.id}") < double_fraction else 1
    return {
        "record_id": record.id, "task": record.task, "lang": record.lang,
        "label": primary_label(record), "flags": "," + "".join(f"{n}," for n in failed),
        "template_id": str(provenance.get("template_id") or ""), "strategy": str(strategy),
        "doubt": doubt_of(record), "rand_key": unit(f"order:{seed}:{record.id}"),
        "record_json": record.model_dump_json(), "status": "pending", "needed": needed,
        "decided": 0, "leased": 0, "enqueued_at": now, "source_file": source_file,
        "original_version": original, "version": original, "version_decision": None, "base_needed": needed,
    }
