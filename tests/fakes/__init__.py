"""Fakes for what cannot run on this machine (vLLM needs a CUDA GPU; a paid API's metering proxy).

Each is named as a fake, records what it is given, and mirrors the real thing's checks that our
code could get wrong (argument names, LoRA limits, HTTP status codes). Tests put them in place
explicitly (`fake_vllm_path()` on `sys.path` / PYTHONPATH); nothing imports them by accident.
"""

from __future__ import annotations

from pathlib import Path

FAKES = Path(__file__).resolve().parent


def fake_vllm_path() -> Path:
    """The folder to put first on sys.path (or PYTHONPATH) so that `import vllm` is the fake."""
    return FAKES / "fake_vllm"
