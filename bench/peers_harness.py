"""The peers bench's harness: the peers' virtual environment, each side's server process, and the
rounds they run in turn (`python -m bench peers`, bench/bench_peers.py).

`peers_python` makes `.venv-peers` from bench/peers-requirements.txt once; `peer_server` starts
bench/peers_side/peer.py in it and `our_server` bench/peers_ours.py in ours, each a `Server` that
speaks the one-JSON-line protocol (bench/peers_side/protocol.py). `alternate` runs each side once per
round, the order flipped every round; `best` takes the fastest. Each side's log and outputs go to WORK.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backends.models import REPO_ROOT

HERE = Path(__file__).resolve().parent
VENV = REPO_ROOT / ".venv-peers"
REQUIREMENTS = HERE / "peers-requirements.txt"
PEER = HERE / "peers_side" / "peer.py"
WORK = REPO_ROOT / "runs" / "bench-peers"  # inputs, task YAMLs, both sides' outputs and logs, for inspection

ROUNDS = int(os.environ.get("SEEDLOOP_PEERS_ROUNDS", "3"))
THREADS = 1  # both sides, one CPU thread each: the machine is shared, and the ratio is what counts


# ---- the peers' virtual environment ------------------------------------------------------------
def peers_python() -> Path:
    """`.venv-peers/bin/python`, creating the venv first when it is missing or its pins changed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.is_file() and stamp.read_text() == digest:
        return python
    start = time.perf_counter()
    print(f"   creating {VENV} from {REQUIREMENTS.name} (once; a few minutes)", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # --no-compile: byte-compiling 2 GB of packages at install is most of its CPU; imports compile what they use.
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    # torch first, the local CPU build: a resolver left to pick it would pull a multi-GB CUDA one.
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)
    print(f"   {VENV.name} ready in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return python


def request_line(op: str, **args: Any) -> str:
    """One request of the protocol (bench/peers_side/protocol.py): `op` and its arguments as one JSON line."""
    return json.dumps({"op": op, **args}, ensure_ascii=False) + "\n"


class Server:
    """One side's server process: `server(op, **args)` sends a request and returns its result."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        self.name = name
        WORK.mkdir(parents=True, exist_ok=True)
        self.log = WORK / f"{name}.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, encoding="utf-8", cwd=REPO_ROOT, env=env)

    def __call__(self, op: str, **args: Any) -> Any:
        self.send(op, **args)
        return self.receive(op)

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(request_line(op, **args))
        self.proc.stdin.flush()

    def receive(self, op: str) -> Any:
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited during {op}: {self._tail()}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"{self.name}: {reply['error']}\n{self._tail()}")
        return reply["result"]

    def _tail(self) -> str:
        self._log.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def side_env(peers: bool) -> dict[str, str]:
    """A side's environment: one thread, offline, caches under WORK; ours imports this checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_DATASETS_CACHE=str(WORK / "hf-datasets"), DISTILABEL_CACHE_DIR=str(WORK / "distilabel"),
               PYTHONUNBUFFERED="1")
    if not peers:
        env["PYTHONPATH"] = str(REPO_ROOT)  # our packages from this checkout; the peers' side gets none
    return env


def peer_server(name: str) -> Server:
    return Server(f"peer-{name}", [str(peers_python()), str(PEER)], side_env(peers=True))


def our_server(name: str) -> Server:
    return Server(f"ours-{name}", [sys.executable, "-m", "bench.peers_ours"], side_env(peers=False))


def started(*servers: Server) -> None:
    """Both sides import their libraries at the same time (untimed), so neither side's timed load
    competes with the other's imports."""
    for server in servers:
        server.send("imports")
    for server in servers:
        server.receive("imports")


@contextmanager
def both_sides(name: str) -> Iterator[tuple[Server, Server]]:
    """(ours, the peer's) server processes for one phase, their libraries imported (`started`)."""
    with our_server(name) as ours, peer_server(name) as peer:
        started(ours, peer)
        yield ours, peer


def alternate(rounds: int, calls: dict[str, Any]) -> dict[str, list[Any]]:
    """Each call once per round, the order reversed every other round; every result kept, in call order."""
    results: dict[str, list[Any]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(calls[name]())
    return results


def best(results: list[dict], key: str = "seconds") -> dict:
    """The fastest of a side's rounds (by `key`)."""
    return min(results, key=lambda r: r[key])


def load_avg() -> str:
    """The machine's load average now, as the rows' notes print it."""
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5-min {five:.1f})"


def dump(name: str, data: dict) -> None:
    """`data` (a phase's per-item outputs) as WORK/<name>.json, for inspection."""
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{name}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
