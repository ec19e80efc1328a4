"""Where the offline models are built and converted: `$SEEDLOOP_CACHE`, else ~/.cache/seedloop.

    folder = cache_dir() / "smollm2-135m-<fingerprint>"
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("SEEDLOOP_CACHE", Path.home() / ".cache" / "seedloop"))
