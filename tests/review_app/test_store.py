"""The queue store: idempotent enqueue, queue order and filters, leases, decisions, undo, double review."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from review_app.store import Conflict, ReviewStore
from tests.review_app.conftest import make_records

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "review_app", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_enqueue_cli_twice_adds_nothing(tmp_path, accepted):
    db = tmp_path / "review.db"
    first = cli("enqueue", "--db", str(db), "--in", str(accepted))
    assert first.returncode == 0, first.stderr
    assert "enqueued 12 new items" in first.stdout
    second = cli("enqueue", "--db", str(db), "--in", str(accepted))
    assert "enqueued 0 new items (12 already queued)" in second.stdout
    assert ReviewStore(db).counts("status") == {"pending": 12}


def test_enqueue_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "task": "fin_sentiment", "lang": "en"}\n')
    res = cli("enqueue", "--db", str(tmp_path / "r.db"), "--in", str(bad))
    assert res.returncode == 2
    assert res.stderr.startswith(f"error: {bad}:1: field 'text'") and "Traceback" not in res.stderr


def test_enqueue_plain_rows_through_the_table_reader_of_every_stage(tmp_path):
    """The sample file of plain {id, text, label} rows fills a queue with --task; a CSV and a Parquet
    file with other column names do too (--text-col, --label-col, --lang); a row the reader cannot use
    is its file:line error, and plain rows without --task say what to pass."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.io import iter_jsonl

    db = tmp_path / "review.db"
    sample = REPO / "data" / "samples" / "fin_sentiment" / "en.jsonl"
    rows = [row for _, row in iter_jsonl(sample)]
    distinct = len({row["text"] for row in rows})
    res = cli("enqueue", "--db", str(db), "--in", str(sample), "--task", "fin_sentiment")
    assert res.returncode == 0, res.stderr
    assert f"enqueued {distinct} new items ({len(rows) - distinct} already queued)" in res.stdout
    items = ReviewStore(db).list_items()
    assert len(items) == distinct and {(i.record.task, i.record.lang) for i in items} == {("fin_sentiment", "en")}
    assert {i.label for i in items} == {"positive", "negative", "neutral"}
    assert {i.text: i.label for i in items}[rows[0]["text"]] == rows[0]["label"]

    plain = cli("enqueue", "--db", str(db), "--in", str(sample))
    assert plain.returncode == 2 and plain.stderr.startswith(f"error: {sample}: plain rows, not records: pass --task")

    csv = tmp_path / "spreadsheet.csv"
    csv.write_text("sentence,sentiment\nLợi nhuận quý ba tăng mạnh.,positive\nCổ phiếu đi ngang.,sideways\n")
    bad = cli("enqueue", "--db", str(db), "--in", str(csv), "--task", "fin_sentiment", "--text-col", "sentence",
              "--label-col", "sentiment", "--lang", "vi")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith(f"error: {csv}:3: field 'sentiment': unknown label 'sideways'")
    parquet = tmp_path / "more.parquet"
    pq.write_table(pa.table({"sentence": ["Doanh thu giảm 8%.", "Công ty họp cổ đông."],
                             "sentiment": ["negative", "neutral"]}), parquet)
    res = cli("enqueue", "--db", str(db), "--in", str(parquet), "--task", "fin_sentiment", "--text-col", "sentence",
              "--label-col", "sentiment", "--lang", "vi")
    assert res.returncode == 0, res.stderr
    assert sorted((i.record.lang, i.label) for i in ReviewStore(db).list_items(lang="vi")) == [
        ("vi", "negative"), ("vi", "neutral")]


def test_most_doubtful_first_then_random_order_is_seeded(tmp_path):
    store = ReviewStore(tmp_path / "r.db")
    records = make_records(30)
    store.enqueue(records)
    claimed = []
    for name in ("a", "b", "c"):
        item = store.claim(name)
        claimed.append(item.record.id)
        assert store.claim(name).id == item.id  # claiming again returns the item already held
    assert claimed == [r.id for r in records[:3]]

    def random_order(seed: int) -> list[str]:
        s = ReviewStore(tmp_path / f"rand{seed}.db")
        s.enqueue(records, seed=seed)
        out = []
        for i in range(10):
            item = s.claim(f"r{i}", order="random")
            out.append(item.record.id)
        return out

    assert random_order(1) == random_order(1) != [r.id for r in records[:10]]
    assert random_order(1) != random_order(2)


def test_filters_by_language_label_flag_and_status(db_url):
    store = ReviewStore(db_url)
    store.enqueue(make_records(30))
    assert store.claim("a", lang="vi").record.lang == "vi"
    assert store.claim("b", label="neutral").record.labels["label"] == "neutral"
    flagged = store.claim("c", flag="dedup")
    assert not flagged.record.verdict("dedup").passed and "dedup" in flagged.flags
    store.decide(flagged.id, "c", "approve")
    assert [i.id for i in store.list_items(status="approved")] == [flagged.id]
    assert store.filter_values()["flag"] == ["dedup", "self_consistency"]
    with pytest.raises(Exception, match="unknown queue order"):
        store.claim("d", order="newest")


def test_expired_lease_returns_item_to_queue(db_url):
    clock = Clock()
    store = ReviewStore(db_url, lease_seconds=60, clock=clock)
    store.enqueue(make_records(3))
    held = store.claim("ana")
    assert store.claim("bob").id != held.id
    clock.t += 61
    assert store.claim("cat").id == held.id  # ana's lease ran out
    with pytest.raises(Conflict, match="claimed by another"):
        store.decide(held.id, "ana", "approve")


def test_decide_edit_reject_and_conflicts(db_url):
    store = ReviewStore(db_url)
    store.enqueue(make_records(3))
    a = store.claim("ana")
    store.decide(a.id, "ana", "edit", label="negative", text="Edited text", reason="wrong label")
    assert store.get(a.id).status == "edited"
    text, labels, _ = store.final_state(a.id)
    assert (text, labels) == ("Edited text", {"label": "negative"})
    with pytest.raises(Conflict, match="already decided"):
        store.decide(a.id, "bob", "approve")
    b = store.claim("bob")
    with pytest.raises(Conflict, match="claimed by another"):
        store.decide(b.id, "ana", "reject")
    store.decide(b.id, "bob", "reject", reason="off-topic")
    assert store.get(b.id).status == "rejected"
    c = store.claim("cat")
    store.decide(c.id, "cat", "edit", label=c.label)  # an edit that changes nothing is an approval
    assert store.decision_log()[-1]["action"] == "approve"
    with pytest.raises(Exception, match="unknown action"):
        store.decide(c.id, "cat", "delete")


def test_undo_appends_and_gives_item_back(db_url):
    store = ReviewStore(db_url)
    store.enqueue(make_records(3))
    first = store.claim("ana")
    store.decide(first.id, "ana", "reject", reason="garbled")
    store.claim("ana")
    assert store.undo_last("ana") == first.id
    assert store.get(first.id).status == "pending"
    assert store.claim("ana").id == first.id  # the undone item comes straight back
    log = store.decision_log()
    assert [d["action"] for d in log] == ["reject", "undo"] and log[1]["undoes"] == log[0]["id"]
    store.decide(first.id, "ana", "approve")
    assert store.get(first.id).status == "approved"
    assert store.undo_last("nobody") is None


def test_two_independent_decisions_and_a_tie_breaker(db_url):
    store = ReviewStore(db_url)
    store.enqueue(make_records(2), reviews=2)
    a, b = store.claim("ana"), store.claim("bob")
    assert a.id == b.id and a.needed == 2  # two live leases on one item needing two decisions
    assert store.claim("cat").id != a.id
    store.decide(a.id, "ana", "approve")
    assert store.get(a.id).status == "pending"
    with pytest.raises(Conflict, match="already decided it"):
        store.decide(a.id, "ana", "reject")
    store.decide(a.id, "bob", "reject", reason="wrong label")
    item = store.get(a.id)
    assert (item.status, item.needed) == ("pending", 3)  # disagreement: a third annotator decides
    store.release(store.claim("cat").id, "cat")
    assert store.claim("dan").id == a.id
    store.decide(a.id, "dan", "reject", reason="wrong label")
    assert store.get(a.id).status == "rejected"


def test_double_fraction_is_seeded(tmp_path):
    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(200), double_fraction=0.25, seed=3)
    doubles = sum(i.needed == 2 for i in store.list_items())
    assert 30 <= doubles <= 70


WORKER = """
import json, sys
from review_app.store import ReviewStore
store = ReviewStore(sys.argv[1])
name = sys.argv[2]
if len(sys.argv) > 3:  # behind a barrier: say we are ready, wait for the go
    print("ready", flush=True)
    sys.stdin.readline()
while True:
    item = store.claim(name)
    if item is None:
        break
    store.decide(item.id, name, "approve" if item.id % 3 else "reject", reason="r")
    print(json.dumps([item.id, "decided"]), flush=True)
"""


def start_behind_barrier(argvs: list[list[str]]) -> list[subprocess.Popen]:
    """Start one process per argv, wait until every one has imported and opened its store (it
    prints 'ready'), then let them all go at once: no process gets a head start on a loaded machine."""
    procs = [subprocess.Popen([PY, "-c", *argv, "barrier"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for argv in argvs]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()  # communicate() closes it
    return procs


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_two_annotators_never_claim_the_same_item(request, tmp_path, engine):
    # Two processes work one queue: SQLite serialises them (BEGIN IMMEDIATE), Postgres lets them run
    # side by side (FOR UPDATE SKIP LOCKED). Neither may lease or decide an item the other took.
    db, n = (str(tmp_path / "r.db"), 1000) if engine == "sqlite" else (request.getfixturevalue("pg_url"), 400)
    ReviewStore(db).enqueue(make_records(n))
    procs = start_behind_barrier([[WORKER, str(db), name] for name in ("w1", "w2")])
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    done = [[json.loads(line)[0] for line in out.splitlines()] for out in outs]
    # Both really worked the queue, at the same time: each claimed items while the other was claiming.
    # (How many each gets is up to the OS scheduler: under `make test`'s two workers one process got 45
    # of 1,000 on SQLite, whose writers take turns.)
    assert all(len(d) >= 10 for d in done), [len(d) for d in done]
    assert min(done[0]) < max(done[1]) and min(done[1]) < max(done[0])
    assert not set(done[0]) & set(done[1])
    store = ReviewStore(db)
    log = store.decision_log()
    assert len(log) == n and len({d["item_id"] for d in log}) == n
    assert store.counts("status").get("pending", 0) == 0


ENQUEUER = """
import sys
from core.io import read_records
from review_app.store import ReviewStore
store = ReviewStore(sys.argv[1])
records = read_records(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
res = store.enqueue(records, batch=50)
print(res.added, res.skipped, flush=True)
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_two_concurrent_enqueues_of_one_file_both_succeed(request, tmp_path, engine):
    """INSERT ... ON CONFLICT DO NOTHING: the rows one run inserted first are skipped by the other,
    never an IntegrityError; together they add every record exactly once."""
    from core.io import write_jsonl_atomic

    db = str(tmp_path / "r.db") if engine == "sqlite" else request.getfixturevalue("pg_url")
    ReviewStore(db).close()  # the schema exists; the race is over the rows
    path = tmp_path / "accepted.jsonl"
    write_jsonl_atomic(path, make_records(1500))
    procs = [subprocess.Popen([PY, "-c", ENQUEUER, db, str(path)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()  # communicate() closes it
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    counts = [tuple(map(int, out.split())) for out, _ in results]
    assert sum(added for added, _ in counts) == 1500
    assert all(added + skipped == 1500 for added, skipped in counts)
    assert ReviewStore(db).counts("status") == {"pending": 1500}


def test_a_claim_never_waits_for_expired_leases_held_elsewhere(pg_url):
    """Expired leases are free in the claim query itself: no clean-up of every expired lease before a
    claim, which used to wait for whoever held one of those rows (here: a decision in progress)."""
    import threading

    import psycopg

    clock = Clock()
    store = ReviewStore(pg_url, lease_seconds=60, clock=clock)
    store.enqueue(make_records(3))
    first = store.claim("ana")
    clock.t += 61  # ana's lease has run out, and her slow decision on that item is still in progress:
    blocker = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    blocker.execute("SELECT * FROM items WHERE id = %s FOR UPDATE", (first.id,))
    blocker.execute("SELECT * FROM leases WHERE item_id = %s FOR UPDATE", (first.id,))
    got: list = []
    worker = threading.Thread(target=lambda: got.append(store.claim("bob")), daemon=True)
    try:
        worker.start()
        worker.join(timeout=60)
        assert got, "bob's claim waited for the row locks on an expired lease"
        assert got[0].id != first.id  # the locked item is skipped, the next one taken
    finally:
        blocker.rollback()
        blocker.close()
        worker.join(timeout=60)
    assert store.claim("cat").id == first.id  # and the expired one is free for the next claimer


def test_database_survives_kill_mid_decision(tmp_path):
    db = tmp_path / "r.db"
    ReviewStore(db).enqueue(make_records(3000))
    proc = subprocess.Popen([PY, "-c", WORKER, str(db), "w"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    reported = []
    for line in proc.stdout:
        reported.append(json.loads(line)[0])
        if len(reported) == 40:
            proc.kill()
            break
    proc.wait(timeout=30)
    store = ReviewStore(db)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    log = store.decision_log()
    assert set(reported) <= {d["item_id"] for d in log}  # every decision it reported is there
    decided = {i.id for i in store.list_items() if i.status != "pending"}
    assert decided == {d["item_id"] for d in log}  # and the item table agrees with the log
    nxt = store.claim("after")  # the queue still works
    assert nxt is not None and nxt.id not in decided
