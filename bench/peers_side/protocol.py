"""The one server loop and timer both sides of `python -m bench peers` run (standard library only).

    from protocol import serve, timed                  # bench/peers_side/peer.py, in .venv-peers
    from bench.peers_side.protocol import serve, timed  # bench/peers_ours.py, in ours

One JSON request per line on stdin ({"op": ..., ...}), one JSON reply per line on stdout ({"ok": true,
"result": ...} or {"ok": false, "error": ...}). It imports nothing of this repository, so the peers'
virtual environment can run it as it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak RSS in MB of this process while `fn` ran, result)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return seconds, _status_kb("VmHWM") / 1024, result


def serve(ops: dict[str, Callable[..., Any]]) -> None:
    """Answer requests until stdin closes; a failing op is an error reply, never the end of the server."""
    # The protocol owns the real stdout; anything printed by a library (C code included) goes to stderr.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        try:
            reply = {"ok": True, "result": ops[op](**request)}
        except Exception as exc:
            traceback.print_exc()
            reply = {"ok": False, "error": f"{op}: {type(exc).__name__}: {exc}"}
        proto.write(json.dumps(reply, ensure_ascii=False) + "\n")
        proto.flush()
