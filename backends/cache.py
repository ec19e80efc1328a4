"""Where the offline models are built and converted: `$SEEDLOOP_CACHE`, else ~/.cache/seedloop.

    folder = build_once(cache_dir() / "smollm2-135m-<fingerprint>", convert_into)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("SEEDLOOP_CACHE", Path.home() / ".cache" / "seedloop"))


def build_once(target: Path, builder: Callable[[Path], None]) -> Path:
    """`target`, built by `builder(folder)` into a temporary sibling and renamed into place the first time.

    Atomic, so safe in parallel: a reader never sees a half-built folder, and when two processes build at
    once the second rename fails and its identical copy is dropped.
    """
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        builder(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: theirs is identical, keep it
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def installed_file(dist: str, rel: str) -> Path | None:
    """The path of data file `rel` inside the installed distribution `dist` (never imported), or None."""
    try:
        path = Path(str(metadata.distribution(dist).locate_file(rel)))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None
