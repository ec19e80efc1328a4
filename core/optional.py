"""One availability check for each heavy optional dependency (vllm, ray, openai, redis), as TRL does.

    if is_available("vllm"): ...
    ray = require("ray")          # the module, or one line saying how to install it (exit code 2)

Each is imported only where it is used and only through `require`, so a missing one is always the same
one-line error, never a traceback from deep inside a stage.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from core.errors import fail

INSTALL = {
    "vllm": "pip install 'seedloop[vllm]' on a machine with a CUDA GPU (--backend vllm)",
    "ray": "pip install -e '.[ray]' (generate.py --ray)",
    "openai": "pip install openai (--backend openai, run.py's API augmentation)",
    "redis": "pip install redis (--redis-url)",
}


def is_available(name: str) -> bool:
    """True when the optional dependency `name` can be imported (not cached: tests put fakes on sys.path)."""
    if name not in INSTALL:
        raise ValueError(f"not an optional dependency: {name!r} (one of {', '.join(INSTALL)})")
    return importlib.util.find_spec(name) is not None


def require(name: str) -> ModuleType:
    """Import the optional dependency `name`, or fail with one line that says how to install it."""
    if not is_available(name):
        fail(f"{name} is not installed: {INSTALL[name]}")
    return importlib.import_module(name)
