"""Labelled inputs of every stage as records: `Record` JSONL, or any JSONL / CSV / Parquet / Hub dataset
with a column mapping. The trainer reads its training files and the evaluator its eval file through here.

    records = load_inputs(["runs/fin/data/train.jsonl", "runs/fin/curated.jsonl"], task)
    records = load_inputs(["tweets.csv"], task, ColumnMap(text="text", label="label", lang="en"))

    add_input_args(parser)                      # --text-col --label-col --lang --lang-col --output-col --label-source
    records = load_inputs(paths, task, columns_from_args(parser_args))

Every problem (missing file, empty file, missing column, unknown label) is a `UserError` naming the
file, the line (row) and the field.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError, fail
from core.io import read_jsonl, read_records
from core.records import Record
from core.tasks import Task

HUB_PREFIX = "hub:"


@dataclass(frozen=True)
class ColumnMap:
    """How a non-record table maps to records.

    Attributes:
        text: column holding the input text.
        label: column holding the task's label (raw spellings are normalised by the task).
        lang: a fixed language code for every row, unless `lang_col` names a column.
        outputs: task output field -> column (e.g. ``{"reply": "ideal_reply"}`` for support_intent).
        source: dataset name passed to `Task.normalise_label` for numeric label codes.
    """

    text: str = "text"
    label: str = "label"
    lang: str = "en"
    lang_col: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    source: str | None = None


def add_input_args(parser: argparse.ArgumentParser) -> None:
    """The column-mapping flags of non-record inputs, the same in every stage's command line."""
    g = parser.add_argument_group("inputs that are not Record JSONL (CSV, TSV, Parquet, JSONL rows, hub:NAME[:SPLIT])")
    g.add_argument("--text-col", help="column with the input text (turns on the column mapping)")
    g.add_argument("--label-col", default="label", help="column with the label (default: label)")
    g.add_argument("--lang", default="en", help="language code of every row (default: en)")
    g.add_argument("--lang-col", help="column with each row's language code (instead of --lang)")
    g.add_argument("--output-col", action="append", default=[], metavar="FIELD=COLUMN",
                   help="a task output field from a column, e.g. reply=ideal_reply (repeatable)")
    g.add_argument("--label-source", help="dataset name for the task's numeric label codes, e.g. uit_vsfc")


def columns_from_args(args: argparse.Namespace) -> ColumnMap | None:
    """The `ColumnMap` the flags of `add_input_args` describe; None without `--text-col` (Record JSONL)."""
    if not args.text_col:
        return None
    outputs = {}
    for item in args.output_col:
        name, sep, col = item.partition("=")
        if not sep:
            fail(f"--output-col expects FIELD=COLUMN, got '{item}'")
        outputs[name] = col
    return ColumnMap(text=args.text_col, label=args.label_col, lang=args.lang, lang_col=args.lang_col,
                     outputs=outputs, source=args.label_source)


def is_record_file(path: str) -> bool:
    """True where `path` may hold Record JSONL (.jsonl / .json); tables and `hub:` need a column mapping."""
    return not path.startswith(HUB_PREFIX) and Path(path).suffix.lower() in {".jsonl", ".json"}


def load_inputs(paths: list[str], task: Task, columns: ColumnMap | None = None) -> list[Record]:
    """Records of `task` from every path, in order; records of other tasks are an error."""
    records: list[Record] = []
    for path in paths:
        records.extend(load_one(path, task, columns))
    return records


def load_one(path: str, task: Task, columns: ColumnMap | None = None) -> list[Record]:
    if path.startswith(HUB_PREFIX):
        return _from_rows(_hub_rows(path[len(HUB_PREFIX):]), path, task, columns or ColumnMap(), first_line=0)
    file = Path(path)
    if not file.is_file():
        fail(f"{file}: file not found")
    if file.stat().st_size == 0:
        fail(f"{file}: empty file")
    suffix = file.suffix.lower()
    if suffix in {".jsonl", ".json"}:
        if columns is None:
            _check_record_jsonl(file)
            records = read_records(file)
            for i, rec in enumerate(records, start=1):
                if rec.task != task.name:
                    fail(f"{file}:{i}: field 'task': record of task '{rec.task}', the task here is '{task.name}'")
                if task.label_name not in rec.labels:
                    fail(f"{file}:{i}: field 'labels.{task.label_name}': missing")
            return records
        return _from_rows(read_jsonl(file), str(file), task, columns, first_line=1)
    if suffix in {".csv", ".tsv", ".parquet"}:
        import pandas as pd

        try:
            frame = pd.read_parquet(file) if suffix == ".parquet" else pd.read_csv(
                file, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False
            )
        except Exception as exc:  # pandas raises many types for a malformed table
            raise UserError(f"{file}: cannot read ({str(exc).splitlines()[0]})") from None
        # CSV line 1 is the header, so row i is on line i + 2.
        return _from_rows(frame.to_dict("records"), str(file), task, columns or ColumnMap(),
                          first_line=0 if suffix == ".parquet" else 2)
    fail(f"{file}: unsupported file type '{suffix}' (use .jsonl, .csv, .tsv, .parquet or hub:NAME)")


def _check_record_jsonl(file: Path) -> None:
    """Plain JSONL rows (no 'task'/'labels') get a hint to pass a column mapping instead."""
    from core.io import iter_jsonl

    for lineno, obj in iter_jsonl(file):
        if "task" not in obj and "labels" not in obj:
            fail(f"{file}:{lineno}: not a Record (no 'task' or 'labels' field); for plain rows pass "
                 f"--text-col and --label-col (fields here: {', '.join(obj)})")
        return


def _hub_rows(spec: str) -> list[dict[str, Any]]:
    """`owner/name[:split]` through `datasets.load_dataset` (the Hub, or its local cache offline)."""
    from datasets import load_dataset

    name, _, split = spec.partition(":")
    try:
        return list(load_dataset(name, split=split or "train"))
    except Exception as exc:  # offline, missing dataset, missing split: all are the user's to fix
        raise UserError(f"hub:{spec}: cannot load dataset ({str(exc).splitlines()[0]})") from None


def _from_rows(rows: list[dict[str, Any]], where: str, task: Task, cols: ColumnMap, first_line: int) -> list[Record]:
    if not rows:
        fail(f"{where}: empty (no rows)")
    wanted = [cols.text, cols.label, *cols.outputs.values()] + ([cols.lang_col] if cols.lang_col else [])
    missing = [c for c in wanted if c not in rows[0]]
    if missing and first_line != 1:  # tables: one header for all rows
        fail(f"{where}: missing column '{missing[0]}' (have: {', '.join(map(str, rows[0]))})")
    records = []
    for i, row in enumerate(rows):
        line = f"{where}:{first_line + i}" if first_line else f"{where} row {i}"
        for col in wanted:
            if col not in row:
                fail(f"{line}: missing field '{col}'")
        text = str(row[cols.text] or "").strip()
        if not text:
            fail(f"{line}: field '{cols.text}': empty text")
        label = task.normalise_label(row[cols.label], cols.source)
        if label is None:
            fail(f"{line}: field '{cols.label}': unknown label '{row[cols.label]}' "
                 f"(task {task.name}: {', '.join(task.label_names)})")
        labels = {task.label_name: label, **{name: str(row[col]) for name, col in cols.outputs.items()}}
        lang = str(row[cols.lang_col]) if cols.lang_col else cols.lang
        records.append(Record.new(task=task.name, lang=lang, text=text, labels=labels,
                                  provenance={"dataset": where, "row": i}))
    return records
