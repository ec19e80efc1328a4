"""Records with everything the review app shows (verdicts, self-consistency votes, seeds, doubt), and
the two databases the store runs on: a SQLite file and a real PostgreSQL server started here."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.io import write_jsonl_atomic
from core.records import Record, Verdict

LABELS = ["positive", "negative", "neutral"]
HOSTILE = ["<script>alert(1)</script>", "![pwned](http://127.0.0.1:9/pwned.png) **not bold**"]


def make_records(n: int, *, hostile: bool = False) -> list[Record]:
    """`n` synthetic fin_sentiment records; doubt falls with the index, so item order is predictable."""
    texts = [*HOSTILE] if hostile else []
    texts += [f"Nordvik Shipping sample {i}: quarterly sales moved {i % 17}% year on year." for i in range(n - len(texts))]
    records = []
    for i, text in enumerate(texts):
        label = LABELS[i % 3]
        majority = label if i % 4 else LABELS[(i + 1) % 3]
        records.append(Record.new(
            task="fin_sentiment", lang="vi" if i % 5 == 4 else "en", text=text, labels={"label": label},
            source="synthetic",
            provenance={"seed_ids": [f"en_{i % 9 + 1:03d}"], "seed_texts": [f"Seed text <b>{i}</b>"],
                        "template_id": "fewshot" if i % 2 else "direct",
                        "attributes": {"sector": "banking" if i % 2 else "shipping and logistics"},
                        "prompt": f"Write one {label} financial news sentence like: Seed text {i}",
                        "sampling": {"strategy": "temperature" if i % 3 else "min_p", "temperature": 0.9},
                        "model": "tiny"},
            meta={"doubt": round(1.0 - i / max(n, 1), 6)},
            verdicts=[Verdict(name="schema", passed=True, score=1.0),
                      Verdict(name="dedup", passed=i % 7 != 3, score=0.2),
                      Verdict(name="self_consistency", passed=majority == label, score=0.67,
                              details={"votes": {label: 2, LABELS[(i + 1) % 3]: 1}, "majority": majority,
                                       "agreement": 0.67})],
        ))
    return records


@pytest.fixture
def accepted(tmp_path: Path) -> Path:
    path = tmp_path / "accepted.jsonl"
    write_jsonl_atomic(path, make_records(12, hostile=True))
    return path


# ---- a real PostgreSQL server for the store tests ------------------------------------------------
def _pg_bindir() -> Path | None:
    """Debian's server binaries (postgresql-NN), else initdb on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free loopback port for the whole test session; yields the
    server's SQLAlchemy URL (no database). Run as the `postgres` system user when we are root (the
    server refuses to run as root); skipped only when the server binaries are not installed."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="seedloop-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' system user to run the server as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()

    def pg(*args: str) -> None:
        res = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if res.returncode:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            raise RuntimeError(f"{args[0]} failed: {res.stdout}{res.stderr}{log}")

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
    # fsync off: a test server, thrown away at the end; nothing here tests Postgres's own durability.
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "-o",
       f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server (dropped afterwards)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres_server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{postgres_server}/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> str:
    """The store tests run on both engines: a SQLite file, and a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "review.db")
    return request.getfixturevalue("pg_url")
