"""Path checks for everything the review app writes: the database and the exports.

A path the user names is taken literally: its last component may not be a symlink (which would
redirect the write elsewhere), may not be an existing folder where a file is expected, and every
file an export writes inside a folder must resolve to a place inside that folder.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import fail


def _literal(path: str | Path, what: str) -> Path:
    text = str(path)
    if not text.strip() or "\x00" in text:
        fail(f"{what} path {text!r} is not a usable file name")
    p = Path(text).expanduser()
    if p.is_symlink():
        fail(f"{p}: {what} path is a symbolic link; name the real file instead")
    return p.absolute()


def check_db_path(path: str | Path) -> Path:
    """The database file: a plain file (or not yet existing) whose folder exists or can be made."""
    p = _literal(path, "database")
    if p.is_dir():
        fail(f"{p}: is a folder; --db names the database file, e.g. {p / 'review.db'}")
    if p.suffix.lower() in {".jsonl", ".json", ".csv"}:
        fail(f"{p}: looks like a data file, not a database; name a .db file for --db")
    return p


def check_output_file(path: str | Path) -> Path:
    """An output file such as curated.jsonl."""
    p = _literal(path, "output")
    if p.is_dir():
        fail(f"{p}: is a folder; --out names the JSONL file to write")
    return p


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refused when `name` would lead outside `folder` ('..', absolute, symlinks)."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        fail(f"{name}: refusing to write outside {folder}")
    return target


def check_output_folder(path: str | Path) -> Path:
    """A folder an export fills (e.g. the `datasets` folder)."""
    p = _literal(path, "output folder")
    if p.exists() and not p.is_dir():
        fail(f"{p}: is a file; --hf-dir names a folder")
    return p
