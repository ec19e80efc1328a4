"""Labelled inputs of every stage as records: `Record` JSONL, or any JSONL / CSV / Parquet / Hub dataset
with a column mapping. The trainer reads its training files and the evaluator its eval file through here.

    records = load_inputs(["runs/fin/data/train.jsonl", "runs/fin/curated.jsonl"], task)
    records = load_inputs(["tweets.csv"], task, ColumnMap(text="text", label="label", lang="en"))

    add_input_args(parser)                      # --text-col --label-col --lang --lang-col --output-col --label-source
    records = load_inputs(paths, task, columns_from_args(parser_args))

`read_table` is the one reader of JSONL / CSV / TSV / Parquet rows: the data stage (`data.sources`)
reads a user's table through it too. Every problem (missing file, empty file, bytes not in the
encoding, missing column, unknown label) is a `UserError` naming the file, the line (row) and the field.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError, fail
from core.io import iter_jsonl, read_records
from core.records import Record
from core.task_spec import Task

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

    @property
    def columns(self) -> list[str]:
        """Every column a row must have."""
        return [self.text, self.label, *self.outputs.values()] + ([self.lang_col] if self.lang_col else [])


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
        rows = [(f"{path} row {i}", row) for i, row in enumerate(_hub_rows(path[len(HUB_PREFIX):]))]
        return _from_rows(rows, path, task, columns or ColumnMap())
    file = Path(path)
    if not file.is_file():
        fail(f"{file}: file not found")
    if file.stat().st_size == 0:
        fail(f"{file}: empty file")
    if columns is None and is_record_file(path):
        _check_record_jsonl(file)
        records = read_records(file)
        for i, rec in enumerate(records, start=1):
            if rec.task != task.name:
                fail(f"{file}:{i}: field 'task': record of task '{rec.task}', the task here is '{task.name}'")
            if task.label_name not in rec.labels:
                fail(f"{file}:{i}: field 'labels.{task.label_name}': missing")
        return records
    cols = columns or ColumnMap()
    rows = [(f"{file}:{line}", row) for line, row in read_table(file, cols.columns)]
    return _from_rows(rows, str(file), task, cols)


def read_text_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """All lines of a text file; undecodable bytes and empty files are errors naming file and line."""
    if not path.is_file():
        fail(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        fail(f"{path}:{line}: not valid {encoding} (byte 0x{data[exc.start]:02x}: {exc.reason}); "
             f"pass the file's encoding (--encoding)")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        fail(f"{path}: empty file")
    return lines


def read_table(path: Path, columns: Sequence[str], encoding: str = "utf-8") -> list[tuple[int, dict[str, Any]]]:
    """(line, row) of every row of a JSONL / CSV / TSV / Parquet file, each row holding every one of `columns`.

    The line is where the row is in the file (CSV: line 1 is the header); a Parquet row's is its row
    number + 1. `encoding` applies to CSV / TSV (JSONL is UTF-8). A missing column is named on line 1
    (the header) of a table, a missing field on its own line of JSONL.
    """
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix in {".jsonl", ".json"}:
        for lineno, obj in iter_jsonl(path):
            for col in columns:
                if col not in obj:
                    fail(f"{path}:{lineno}: missing field '{col}'; map yours with --text-col / --label-col")
            rows.append((lineno, obj))
    elif suffix in {".csv", ".tsv"}:
        reader = csv.DictReader(io.StringIO("\n".join(read_text_lines(path, encoding))),
                                delimiter="\t" if suffix == ".tsv" else ",")
        check_columns(path, reader.fieldnames, columns)
        rows = [(reader.line_num, row) for row in reader]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.is_file():
            fail(f"{path}: file not found")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
        check_columns(path, table.column_names, columns)
        rows = [(i + 1, row) for i, row in enumerate(table.to_pylist())]
    else:
        fail(f"{path}: unsupported file type '{suffix}' (use .jsonl, .csv, .tsv or .parquet)")
    if not rows:
        fail(f"{path}: empty file (no rows)")
    return rows


def check_columns(path: Path, have: Any, need: Sequence[str]) -> None:
    """Every column of `need` is in `have` (a table's header), else an error on the header's line."""
    have = list(have or [])
    for col in need:
        if col not in have:
            fail(f"{path}:1: missing column '{col}' (columns: {', '.join(map(str, have)) or 'none'}); "
                 "map yours with --text-col / --label-col")


def _check_record_jsonl(file: Path) -> None:
    """Plain JSONL rows (no 'task'/'labels') get a hint to pass a column mapping instead."""
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


def _from_rows(rows: list[tuple[str, dict[str, Any]]], where: str, task: Task, cols: ColumnMap) -> list[Record]:
    """Records from (location, row) pairs; a row without the columns, text or a known label is an error."""
    if not rows:
        fail(f"{where}: empty (no rows)")
    missing = [c for c in cols.columns if c not in rows[0][1]]
    if missing:  # a Hub dataset: one set of columns for all rows
        fail(f"{where}: missing column '{missing[0]}' (have: {', '.join(map(str, rows[0][1]))})")
    records = []
    for i, (line, row) in enumerate(rows):
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
