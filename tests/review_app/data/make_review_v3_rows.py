"""How `review_v3_rows.json` was made: a small review history written by the store as it was on main at
56e76f7 (hand-written migrations 1-3), every table dumped as JSON rows. It only runs against that
commit's `review_app` (the store has moved on since); kept so the fixture's origin can be checked.

    git worktree add /tmp/v3 56e76f7 && cd /tmp/v3 && \
        PYTHONPATH=$PWD python tests/review_app/data/make_review_v3_rows.py /tmp/v3.db > review_v3_rows.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlalchemy import MetaData, Table, select

from review_app.store import ReviewStore
from tests.review_app.conftest import make_records


class Clock:
    t = 1_700_000_000.0

    def __call__(self) -> float:
        Clock.t += 7.0
        return Clock.t


def main(db: Path) -> None:
    store = ReviewStore(db, clock=Clock())
    recs = make_records(8)
    store.enqueue(recs[:5], reviews=2)
    store.enqueue(recs[5:])
    a, b, c, d, e, f, g, _h = (i.id for i in store.list_items())
    # a: ana approves, bob relabels (1:1), cat approves bob's pending edit -> edited
    store.decide(a, "ana", "approve")
    store.decide(a, "bob", "edit", label="negative", reason="bad news")
    store.decide(a, "cat", "approve", version=store.get(a).version)
    # b: both approve -> approved
    store.decide(b, "ana", "approve")
    store.decide(b, "bob", "approve")
    # c: three-way split -> disputed, then eve (adjudicator) rules for the edit
    store.decide(c, "ana", "approve")
    store.decide(c, "bob", "edit", text="A rewritten sentence.", reason="wording")
    store.decide(c, "cat", "reject", reason="garbled")
    store.set_role("eve", "adjudicator")
    store.decide(c, "eve", "approve", version=store.versions(c)[1]["version"])
    # d: ana approves, bob rejects, then bob undoes -> pending again (and leased to bob)
    store.decide(d, "ana", "approve")
    store.decide(d, "bob", "reject", reason="off-topic")
    store.undo_last("bob")
    # e: disputed, waiting for an adjudicator
    store.decide(e, "ana", "approve")
    store.decide(e, "bob", "edit", label="neutral")
    store.decide(e, "cat", "reject", reason="x")
    # f: single review, rejected; g: edited by dan; h: pending, leased to dan
    store.decide(f, "ana", "reject", reason="near-duplicate")
    store.decide(g, "dan", "edit", text="Dan's corrected text.", label="neutral", reason="fixed")
    store.release(store.claim("dan").id, "dan")
    store.claim("dan")
    out = {}
    with store.engine.connect() as conn:
        md = MetaData()
        for name in ("schema_migrations", "items", "decisions", "votes", "leases", "roles"):
            t = Table(name, md, autoload_with=conn)
            out[name] = [dict(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).mappings()]
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
