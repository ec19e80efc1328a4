"""Review store under a team: 20 annotator processes on 10,000 items, SQLite and a real PostgreSQL.

    python -m bench review_load                       # 30 s per run, 4 runs (a few minutes)
    SEEDLOOP_BENCH_LOAD_S=60 python -m bench review_load

Each annotator process claims and votes as fast as it can for a bounded time (approve 70 %, reject
15 %, relabel 15 %, seeded per annotator), on a queue where a fifth of the items need two independent
votes; two more processes walk away from every item they claim (2-second leases), so leases expire
all the time. Afterwards the run is checked, and the benchmark fails rather than report numbers for a
broken store: no item held by more annotators at once than it had open slots, every decision a
process was told is stored is in the log, the log holds nothing else, and every item's counters agree
with its votes. (The baseline's own breakages are counted in the note, not raised.)

Ours: `ReviewStore` (expired leases count as free in the claim query itself). Baseline: the same run
with the store as it was, a global clean-up of expired leases (DELETE every expired lease, UPDATE their
items) at the start of every claim and decision, side by side on the same machine.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import BenchRow, ratio
from bench.bench_review import _records, pct

SLOW = True  # minutes, and it starts a PostgreSQL server: run it by name
ANNOTATORS = 20
WALKAWAYS = 2
ITEMS = 10_000
DOUBLE_FRACTION = 0.2
SECONDS = float(os.environ.get("SEEDLOOP_BENCH_LOAD_S", "30"))
WALKAWAY_LEASE_S = 2.0
COMMAND = "python -m bench review_load"


def _global_expiry(store: Any) -> None:
    """The baseline: the old store's `expire()` before every claim and decision (patched in, this
    process only)."""
    from sqlalchemy import delete, func, select, update

    from review_app import queue
    from review_app.schema import items, leases

    def expire(conn: Any, now: float) -> None:
        expired = conn.execute(select(leases.c.item_id).where(leases.c.expires_at < now)).scalars().all()
        if not expired:
            return
        conn.execute(delete(leases).where(leases.c.expires_at < now))
        live = select(func.count()).where(leases.c.item_id == items.c.id).scalar_subquery()
        conn.execute(update(items).where(items.c.id.in_(set(expired))).values(leased=live))

    next_free, others = queue.next_free, queue.others_leasing

    def next_free_after_expiry(conn: Any, annotator: str, **kw: Any) -> Any:
        expire(conn, kw["now"])
        return next_free(conn, annotator, **kw)

    def others_after_expiry(conn: Any, item_id: int, annotator: str, now: float) -> int:
        expire(conn, now)
        return others(conn, item_id, annotator, now)

    queue.next_free, queue.others_leasing = next_free_after_expiry, others_after_expiry


def _annotator(db: str, name: str, role: str, baseline: bool, seconds: float, barrier: Any, out: str) -> None:
    """One process: claim, vote, repeat until the time is up; every operation timed and written to `out`."""
    from core.errors import UserError
    from review_app.store import ReviewStore

    store = ReviewStore(db, lease_seconds=WALKAWAY_LEASE_S if role == "walkaway" else 600.0)
    if baseline:
        _global_expiry(store)
    rng = random.Random(f"load:{name}")
    rows: list[dict[str, Any]] = []
    barrier.wait()  # everyone has imported and opened the store: nobody gets a head start
    deadline = time.time() + seconds
    while time.time() < deadline:
        t0, c0 = time.time(), time.perf_counter()
        try:
            item = store.claim(name)
        except UserError as exc:  # e.g. the database stayed busy (deadlocks) through every retry
            rows.append({"item": None, "who": name, "claim_ms": (time.perf_counter() - c0) * 1000,
                         "result": f"claim: {type(exc).__name__}"})
            continue
        c1, t1 = time.perf_counter(), time.time()
        if item is None:
            break
        row = {"item": item.id, "who": name, "claim_start": t0, "claimed": t1, "claim_ms": (c1 - c0) * 1000}
        if role == "walkaway":
            rows.append({**row, "until": t0 + WALKAWAY_LEASE_S})
            time.sleep(WALKAWAY_LEASE_S + 0.5)  # gone: the lease runs out
            continue
        draw = rng.random()
        d0 = time.perf_counter()
        try:
            if draw < 0.7:
                decision = store.decide(item.id, name, "approve", view=item.view)
            elif draw < 0.85:
                decision = store.decide(item.id, name, "reject", reason="load", view=item.view)
            else:
                other = next(x for x in ("positive", "negative", "neutral") if x != item.labels.get("label"))
                decision = store.decide(item.id, name, "edit", label=other, reason="load", view=item.view)
            result = "ok"
        except UserError as exc:  # Conflict, Stale, or NotSaved (a deadlock through every retry)
            decision, result = None, type(exc).__name__
            row["message"] = str(exc)[:200]
        d1 = time.perf_counter()
        rows.append({**row, "decided": time.time(), "decide_ms": (d1 - d0) * 1000, "decision": decision,
                     "result": result})
    store.close()
    Path(out).write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    now = top = 0
    for _, step in events:
        now += step
        top = max(top, now)
    return top


def check(db: str, rows: list[dict[str, Any]]) -> dict[str, int]:
    """The run's invariants, counted: `lost` (a decision its process was told is stored but is not),
    `unreported` (stored but never reported), `held_twice` (items held by more annotators at once than
    they had slots: every claim counts, from its return to the end of its decision, whatever the
    outcome; a walk-away's until its lease ran out), `bad_counters` (an item's counters disagree with
    its votes), plus what happened."""
    from review_app.store import ReviewStore

    store = ReviewStore(db)
    log = [d for d in store.decision_log() if d["action"] != "undo"]
    items = {i.id: i for i in store.list_items()}
    store.close()
    told = {r["decision"] for r in rows if r.get("decision") is not None}
    stored = {d["id"] for d in log}
    holds: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if r["item"] is not None:
            holds[r["item"]].append((r["claimed"], r["until"] if "until" in r else r["decided"]))
    held_twice = sum(_max_overlap(spans) > items[i].needed for i, spans in holds.items())
    voters: dict[int, list[str]] = defaultdict(list)
    for d in log:
        voters[d["item_id"]].append(d["annotator"])
    bad = sum(len(v) != len(set(v)) or items[i].decided != len(v) for i, v in voters.items())
    return {"decisions": len(stored), "lost": len(told - stored), "unreported": len(stored - told),
            "held_twice": held_twice, "bad_counters": bad,
            "refused": sum(r.get("result", "ok") not in ("ok", None) for r in rows if "until" not in r),
            "not_saved": sum(r.get("result") == "NotSaved" for r in rows),
            "walkaway_claims": sum("until" in r for r in rows),
            "resolved": sum(i.status not in ("pending", "disputed") for i in items.values())}


BROKEN = ("lost", "unreported", "held_twice", "bad_counters")


def load_run(db: str, *, baseline: bool, seconds: float = SECONDS) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Fill `db` with ITEMS items, run the annotators behind a barrier, check; (rows, counts)."""
    from review_app.store import ReviewStore

    store = ReviewStore(db)
    store.enqueue(_records(ITEMS), double_fraction=DOUBLE_FRACTION, seed=0, batch=2000)
    store.close()
    ctx = mp.get_context("spawn")
    names = [(f"annotator{i:02d}", "voter") for i in range(ANNOTATORS)] + \
            [(f"walkaway{i}", "walkaway") for i in range(WALKAWAYS)]
    barrier = ctx.Barrier(len(names))
    with tempfile.TemporaryDirectory() as tmp:
        outs = [str(Path(tmp) / f"{name}.jsonl") for name, _ in names]
        procs = [ctx.Process(target=_annotator, args=(db, name, role, baseline, seconds, barrier, out))
                 for (name, role), out in zip(names, outs, strict=True)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=seconds + 600)
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"annotator processes failed with exit codes {failed}")
        rows = [json.loads(line) for out in outs for line in Path(out).read_text().splitlines() if line]
    return rows, check(db, rows)


def measure(seconds: float = SECONDS) -> dict[str, dict[str, Any]]:
    """{"sqlite" | "postgres": {"ours" | "baseline": (rows, counts)}}."""
    from review_app.local_postgres import LocalPostgres

    out: dict[str, dict[str, Any]] = {"sqlite": {}, "postgres": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("ours", "baseline"):
            out["sqlite"][mode] = load_run(str(Path(tmp) / f"{mode}.db"), baseline=mode == "baseline",
                                           seconds=seconds)
    with LocalPostgres() as pg:
        for mode in ("ours", "baseline"):
            out["postgres"][mode] = load_run(pg.create_database(f"load_{mode}"), baseline=mode == "baseline",
                                             seconds=seconds)
    return out


def run() -> list[BenchRow]:
    results = measure()
    rows = []
    for backend, res in results.items():
        (ours, ours_n), (base, base_n) = res["ours"], res["baseline"]
        broken = {k: ours_n[k] for k in BROKEN if ours_n[k]}
        if broken:  # numbers from a store that double-books or loses votes would mean nothing
            raise AssertionError(f"review store under load on {backend}: {broken}")
        engine = "SQLite WAL file" if backend == "sqlite" else "PostgreSQL 15 on loopback (fsync off)"
        note = (f"{ANNOTATORS} annotator processes + {WALKAWAYS} walking away ({WALKAWAY_LEASE_S:g} s leases), "
                f"{ITEMS} items ({DOUBLE_FRACTION:.0%} double-reviewed), {SECONDS:g} s per run, {engine}, 2 shared "
                f"CPU cores; ours {ours_n['decisions']} decisions ({ours_n['refused']} refused, {ours_n['not_saved']} "
                f"not saved), baseline {base_n['decisions']} ({base_n['refused']} refused, {base_n['not_saved']} not "
                f"saved); ours: no item held beyond its slots, no vote lost; baseline: {base_n['held_twice']} items "
                f"held beyond their slots, {base_n['lost']} votes lost; baseline: the old "
                "global expiry (DELETE + UPDATE of every expired lease) before every claim and decision, on "
                "today's store (with its deadlock retries)")
        for op in ("claim", "decide"):
            key = f"{op}_ms"
            a = [r[key] for r in ours if key in r and not ("until" in r and op == "decide")]
            b = [r[key] for r in base if key in r and not ("until" in r and op == "decide")]
            for q in (50, 99):
                rows.append(BenchRow(f"review.load_{backend}_{op}_p{q}_vs_global_expiry", pct(a, q), pct(b, q),
                                     ratio(pct(a, q), pct(b, q), False), None, "ms", note, COMMAND))
        rate_a, rate_b = ours_n["decisions"] / SECONDS, base_n["decisions"] / SECONDS
        rows.append(BenchRow(f"review.load_{backend}_decisions_per_s_vs_global_expiry", rate_a, rate_b,
                             ratio(rate_a, rate_b), None, "decisions/s", note, COMMAND))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
