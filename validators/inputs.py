"""Reading the chain's inputs: record JSONL (what `generate.py` and `data/` write) or plain labelled rows.

Plain rows like `{"id": "en_001", "text": "...", "label": "bullish"}` (our sample files) become
records: the label goes through `task.normalise_label`, the language comes from a `lang` field,
`--lang`, or a file name that is a language code (`en.jsonl`).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from core.errors import UserError, fail
from core.io import describe_validation_error, iter_jsonl
from core.records import Record, record_id
from core.task_spec import Task
from validators.base import EVAL_SPLITS

_RECORD_KEYS = {"id", "task", "lang", "text"}


def read_inputs(path: str | Path, task: Task, *, lang: str | None = None, split: str | None = None,
                source: str = "real", allow_empty: bool = False) -> list[Record]:
    """Records from `path`; `split` fills in records that have none."""
    path = Path(path)
    file_lang = path.stem if path.stem in task.languages else None
    records: list[Record] = []
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        if set(row) >= _RECORD_KEYS:
            try:
                rec = Record.model_validate(row)
            except ValidationError as exc:
                raise UserError(f"{where}: {describe_validation_error(exc)}") from None
        else:
            rec = _from_row(row, task, where, lang or file_lang, source)
        if rec.split is None and split is not None:
            rec.split = split
        records.append(rec)
    if not records and not allow_empty:
        fail(f"{path}: empty file (no records)")
    return records


def _from_row(row: dict, task: Task, where: str, lang: str | None, source: str) -> Record:
    text_key = task.input_name if task.input_name in row else "text"
    if text_key not in row or not isinstance(row[text_key], str):
        fail(f"{where}: missing field '{task.input_name}' (a record, or a row with the text and '{task.label_name}')")
    row_lang = row.get("lang") or lang
    if not row_lang:
        fail(f"{where}: missing field 'lang' (add it, name the file <lang>.jsonl, or pass --lang)")
    labels: dict[str, str] = {}
    if task.label_name in row:
        label = task.normalise_label(row[task.label_name])
        if label is None:
            fail(f"{where}: field '{task.label_name}': unknown label '{row[task.label_name]}' "
                 f"(labels: {', '.join(task.label_names)})")
        labels[task.label_name] = label
    for name in task.outputs:
        if isinstance(row.get(name), str):
            labels[name] = row[name]
    text = row[text_key]
    return Record(id=str(row.get("id") or record_id(task.name, row_lang, text)), task=task.name, lang=row_lang,
                  text=text, labels=labels, source=row.get("source", source), split=row.get("split"))


def split_from_name(path: str | Path) -> str:
    """'eval' when a word of the file name is an eval-split word (eval.jsonl, test_set.jsonl), else 'train'."""
    parts = set(re.split(r"[^a-z]+", Path(path).stem.lower()))
    return "eval" if parts & EVAL_SPLITS else "train"
