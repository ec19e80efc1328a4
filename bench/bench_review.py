"""Review queue: claim latency as the queue grows (10k, 100k, 1M queued items), p50 and p99.

    python -m bench review

Ours: `ReviewStore.claim` then `ReviewStore.decide`; baseline: the `sqlite3` queue a user would
otherwise write, without and with the index a careful user adds.
Setup: docs/benchmarks.md#design-benchbench_reviewpy
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench import BenchRow, ratio
from core.records import Record, Verdict
from review_app.store import ReviewStore

SIZES = (10_000, 100_000, 1_000_000)
N_OURS = 120  # claims (+ decisions) per size
N_BASE = {10_000: 120, 100_000: 40, 1_000_000: 8}  # the no-index baseline scans the table per claim
BUDGET_MS = 20.0
COMMAND = "python -m bench review"
_DOUBT_SQL = "((id + {k} * 7919) * 104729 % 1000003) / 1000003.0"  # a deterministic spread in [0, 1)


def _records(n: int) -> list[Record]:
    return [Record.new(task="fin_sentiment", lang="en" if i % 4 else "vi", text=f"Sample {i}: sales moved {i % 13}%",
                       labels={"label": ("positive", "negative", "neutral")[i % 3]}, source="synthetic",
                       provenance={"template_id": "fewshot", "sampling": {"strategy": "temperature"}},
                       meta={"doubt": (i * 7919 % 10_007) / 10_007},
                       verdicts=[Verdict(name="dedup", passed=i % 11 != 0, score=0.1)])
            for i in range(n)]


def pct(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method; the value itself for one sample)."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _grow(db: Path, seed_rows: int, target: int) -> None:
    """Copy the first `seed_rows` items until the table holds `target` (one transaction per call)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    have = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    cols = [r[1] for r in conn.execute("PRAGMA table_info(items)") if r[1] != "id"]
    conn.execute("BEGIN")
    k = have // seed_rows
    while have < target:
        n = min(seed_rows, target - have)
        select = [f"record_id || '-{k}'" if c == "record_id" else _DOUBT_SQL.format(k=k) if c == "doubt"
                  else _DOUBT_SQL.format(k=k + 7) if c == "rand_key" else "'pending'" if c == "status"
                  else "0" if c in ("decided", "leased") else c for c in cols]
        conn.execute(f"INSERT INTO items ({', '.join(cols)}) SELECT {', '.join(select)} FROM items "
                     f"WHERE id <= ? ORDER BY id", (n,))
        have, k = have + n, k + 1
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _ours(db: Path, n: int) -> tuple[list[float], list[float]]:
    store = ReviewStore(db)
    claim_ms, decide_ms = [], []
    for i in range(n):
        name = f"annotator{i % 4}"
        start = time.perf_counter()
        item = store.claim(name)
        claim_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        store.decide(item.id, name, "approve" if i % 5 else "reject", reason="bench")
        decide_ms.append((time.perf_counter() - start) * 1000)
    store.close()
    return claim_ms, decide_ms


def _plain_fill(db: Path, source: Path, indexed: bool) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, record_json TEXT NOT NULL, "
                 "doubt REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', annotator TEXT, claimed_at REAL)")
    if indexed:
        conn.execute("CREATE INDEX IF NOT EXISTS ix_queue ON queue (status, doubt DESC)")
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO queue (id, record_json, doubt) SELECT id, record_json, doubt FROM src.items "
                 "WHERE id > (SELECT coalesce(max(id), 0) FROM queue)")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE src")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _plain(db: Path, n: int) -> tuple[list[float], list[float]]:
    """The hand-written queue: SELECT ... ORDER BY ... LIMIT 1 + UPDATE in one transaction."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    claim_ms, decide_ms = [], []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("PRAGMA synchronous=NORMAL")  # as ours: a lost claim is harmless
        conn.execute("BEGIN IMMEDIATE")
        item_id, record_json = conn.execute("SELECT id, record_json FROM queue WHERE status = 'pending' "
                                            "ORDER BY doubt DESC LIMIT 1").fetchone()
        json.loads(record_json)  # the annotator is shown the record
        conn.execute("UPDATE queue SET status = 'claimed', annotator = ?, claimed_at = ? WHERE id = ?",
                     (f"annotator{i % 4}", time.time(), item_id))
        conn.execute("COMMIT")
        claim_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        conn.execute("PRAGMA synchronous=FULL")  # as ours: a decision survives a crash
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE queue SET status = ? WHERE id = ?", ("approved" if i % 5 else "rejected", item_id))
        conn.execute("COMMIT")
        decide_ms.append((time.perf_counter() - start) * 1000)
    conn.close()
    return claim_ms, decide_ms


def measure(sizes: tuple[int, ...] | None = None) -> dict[int, dict[str, tuple[list[float], list[float]]]]:
    """{size: {"ours" | "plain" | "plain_indexed": (claim ms, decide ms)}}."""
    sizes = sizes or SIZES
    out: dict[int, dict[str, tuple[list[float], list[float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ours_db, plain_db, indexed_db = Path(tmp) / "ours.db", Path(tmp) / "plain.db", Path(tmp) / "indexed.db"
        store = ReviewStore(ours_db)
        store.enqueue(_records(sizes[0]), batch=5000)
        store.close()
        for size in sizes:
            _grow(ours_db, sizes[0], size)
            _plain_fill(plain_db, ours_db, indexed=False)
            _plain_fill(indexed_db, ours_db, indexed=True)
            out[size] = {"ours": _ours(ours_db, N_OURS), "plain_indexed": _plain(indexed_db, N_OURS),
                         "plain": _plain(plain_db, N_BASE[size])}
    return out


def run() -> list[BenchRow]:
    results = measure()
    rows = []
    for size, res in results.items():
        ours, plain, indexed = res["ours"], res["plain"], res["plain_indexed"]
        label = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M"
        note = (f"{size} queued items; {N_OURS} claims (ours, indexed) / {len(plain[0])} (plain); "
                f"SQLite WAL, claims synchronous=NORMAL, decisions FULL")
        for q in (50, 99):
            po = pct(ours[0], q)
            rows.append(BenchRow(f"review.claim_p{q}_{label}_vs_plain_select_update", po, pct(plain[0], q),
                                 ratio(po, pct(plain[0], q), False), None, "ms",
                                 "baseline: hand-written sqlite3 queue, SELECT ... ORDER BY doubt LIMIT 1 + UPDATE, "
                                 "no index; " + note, COMMAND))
            rows.append(BenchRow(f"review.claim_p{q}_{label}_vs_plain_indexed", po, pct(indexed[0], q),
                                 ratio(po, pct(indexed[0], q), False), None, "ms",
                                 "baseline: the same hand-written queue with an index on (status, doubt DESC); "
                                 "ours also expires leases, checks votes and roles; " + note, COMMAND))
        p99 = pct(ours[0], 99)
        rows.append(BenchRow(f"review.claim_p99_{label}_vs_20ms_budget", p99, BUDGET_MS,
                             ratio(p99, BUDGET_MS, False), 1.0, "ms", "target: p99 claim under 20 ms; " + note,
                             COMMAND))
        d99 = pct(ours[1], 99)
        rows.append(BenchRow(f"review.decide_p99_{label}_vs_plain_indexed", d99, pct(indexed[1], 99),
                             ratio(d99, pct(indexed[1], 99), False), None, "ms",
                             "baseline: one UPDATE with fsync (FULL); ours records a vote, resolves versions; "
                             + note, COMMAND))
    small, large = results[SIZES[0]]["ours"][0], results[SIZES[-1]]["ours"][0]
    rows.append(BenchRow("review.claim_p50_growth_1M_vs_10k", pct(large, 50), pct(small, 50),
                         ratio(pct(large, 50), pct(small, 50), False), 0.5, "ms",
                         "ours at 1M items vs ours at 10k (1.0 = flat; target: at most 2x slower at 100x the "
                         "items); plain no-index grows "
                         f"{pct(results[SIZES[-1]]['plain'][0], 50) / pct(results[SIZES[0]]['plain'][0], 50):.0f}x",
                         COMMAND))
    return rows
