"""JSONL in and out: strict reads that name the bad line, atomic writes, a crash-safe appender.

    rows = read_jsonl("samples.jsonl")                 # list of dicts
    recs = read_records("train.jsonl")                 # list of Record
    write_jsonl_atomic("out.jsonl", recs)              # temp file + rename: old file intact on crash
    with JsonlAppender("samples.jsonl") as out:        # resumable runs: flush + fsync per batch
        out.write_batch(batch)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from core.errors import UserError, fail
from core.records import Record


def _to_json(row: Any) -> str:
    if isinstance(row, BaseModel):
        return row.model_dump_json()
    return json.dumps(row, ensure_ascii=False, default=str)


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem of a pydantic error as 'field 'a.b': message'."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(row)"
    return f"field '{loc}': {err['msg']}"


def iter_jsonl(path: str | Path, on_bad_line: Callable[[str], None] | None = None
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line raises a UserError naming it.

    With `on_bad_line`, a line that is not a JSON object is reported to it (the same message) and
    skipped instead; a missing or unreadable file is always an error.
    """
    path = Path(path)
    if not path.is_file():
        fail(f"{path}: file not found")
    try:
        handle = path.open(encoding="utf-8-sig")  # a byte-order mark from a Windows editor is not data
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")

    def bad(message: str) -> None:
        if on_bad_line is None:
            fail(message)
        on_bad_line(message)

    with handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    bad(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})")
                    continue
                if not isinstance(obj, dict):
                    bad(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                    continue
                yield lineno, obj
        except UnicodeDecodeError as exc:
            fail(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); re-encode the file as UTF-8")


def read_jsonl(path: str | Path, *, required: Iterable[str] = (), allow_empty: bool = False) -> list[dict]:
    """Read every object; `required` fields must be present (the error names file, line and field)."""
    required = tuple(required)
    rows = []
    for lineno, obj in iter_jsonl(path):
        for field in required:
            if field not in obj:
                fail(f"{path}:{lineno}: missing field '{field}'")
        rows.append(obj)
    if not rows and not allow_empty:
        fail(f"{path}: empty file (no JSON lines)")
    return rows


def read_records(path: str | Path, *, allow_empty: bool = False) -> list[Record]:
    records = []
    for lineno, obj in iter_jsonl(path):
        try:
            records.append(Record.model_validate(obj))
        except ValidationError as exc:
            raise UserError(f"{path}:{lineno}: {describe_validation_error(exc)}") from None
    if not records and not allow_empty:
        fail(f"{path}: empty file (no records)")
    return records


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any]) -> int:
    lines = [_to_json(r) for r in rows]
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


class JsonlAppender:
    """Append-only JSONL writer for long runs: each batch is flushed and fsynced before returning.

    A run killed mid-batch can leave one partial last line; `repair_tail` drops it on resume so
    the file always ends with complete records.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._handle = self.path.open("a", encoding="utf-8")

    def write_batch(self, rows: Iterable[Any]) -> None:
        self._handle.write("".join(_to_json(r) + "\n" for r in rows))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_tail(path: Path) -> bool:
    """Truncate a trailing partial line left by a killed writer. Returns True when it cut something."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return False
        cut = data.rfind(b"\n") + 1
        handle.truncate(cut)
    return True
