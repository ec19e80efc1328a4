"""Records with everything the review app shows (verdicts, self-consistency votes, seeds, doubt), and
the two databases the store runs on: a SQLite file and a real PostgreSQL server started here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import UserError
from core.io import write_jsonl_atomic
from core.records import Record, Verdict
from review_app.local_postgres import LocalPostgres, bindir

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
@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    """A throwaway PostgreSQL server on a free loopback port for the whole test session
    (`review_app.local_postgres`); skipped only when the server binaries are not installed."""
    if bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    try:
        server = LocalPostgres()
    except UserError as exc:
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(pg_server: LocalPostgres) -> str:
    """The session server's SQLAlchemy URL (no database)."""
    return pg_server.url


@pytest.fixture
def pg_url(pg_server: LocalPostgres) -> Iterator[str]:
    """A fresh, empty database on the test server (dropped afterwards)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> str:
    """The store tests run on both engines: a SQLite file, and a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "review.db")
    return request.getfixturevalue("pg_url")
