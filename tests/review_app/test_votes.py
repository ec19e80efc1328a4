"""Votes mean what the annotator was shown: versions, majority, adjudication, undo; migrations on both engines."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import MetaData, Table, create_engine, inspect, select

from core.errors import UserError
from core.records import content_version
from review_app.schema import MIGRATIONS, migrate, schema_migrations
from review_app.store import Conflict, ReviewStore
from tests.review_app.conftest import make_records


def three_on_one(db_url: str, **kw) -> tuple[ReviewStore, int]:
    """One fin_sentiment item claimed 'positive', needing two decisions (the third comes on disagreement)."""
    store = ReviewStore(db_url, **kw)
    store.enqueue(make_records(1), reviews=2)
    item = store.list_items()[0]
    assert item.label == "positive" and item.needed == 2
    return store, item.id


def test_a_vote_is_for_the_version_shown(db_url):
    store, item_id = three_on_one(db_url)
    a = store.claim("ana")
    assert a.is_original and a.labels == {"label": "positive"}
    store.decide(a.id, "ana", "approve", version=a.version)  # ana approves positive
    b = store.claim("bob")
    assert b.is_original  # bob sees the original too: ana approved it, nobody edited it
    store.decide(b.id, "bob", "edit", version=b.version, label="negative", reason="it is bad news")
    item = store.get(item_id)
    assert (item.status, item.needed) == ("pending", 3)  # 1:1, a third decides
    c = store.claim("cat")  # cat is shown the pending edit, with who proposed it
    assert (c.labels, c.proposed_by, c.is_original) == ({"label": "negative"}, "bob", False)
    assert c.text == c.record.text and c.version != a.version
    store.decide(c.id, "cat", "approve", version=c.version)
    assert store.get(item_id).status == "edited"
    _, labels, counted = store.final_state(item_id)
    assert labels == {"label": "negative"}  # bob + cat: the majority
    assert [d["version"] for d in counted] == [a.version, c.version, c.version]
    assert [d["version_shown"] for d in counted] == [a.version, a.version, c.version]


def test_approving_the_original_when_an_edit_is_pending_votes_for_the_original(db_url):
    # The bug this guards against: cat was shown the original (an older page, or an API caller that
    # says so) and approved it; the vote used to go to bob's edit and export bob's minority label.
    store = ReviewStore(db_url)
    store.enqueue(make_records(4)[::3], reviews=2)  # two items, both claimed 'positive'
    first, second = (i.id for i in store.list_items())
    original = store.get(first).version
    store.decide(first, "ana", "approve", version=original)
    store.decide(first, "bob", "edit", version=original, label="negative")
    store.decide(first, "cat", "approve", version=original)
    item = store.get(first)
    assert item.status == "approved" and item.labels == {"label": "positive"} and item.is_original
    assert store.final_state(first)[1] == {"label": "positive"}
    # relabelling the pending edit back to the claimed label is a vote for the original as well
    store.decide(second, "ana", "approve")
    store.decide(second, "bob", "edit", label="negative")
    shown = store.get(second)
    assert shown.labels == {"label": "negative"}
    store.decide(second, "cat", "edit", version=shown.version, label="positive")
    assert store.get(second).status == "approved" and store.get(second).labels["label"] == "positive"


def test_three_way_split_goes_to_an_adjudicator(db_url):
    store, item_id = three_on_one(db_url)
    store.decide(item_id, "ana", "approve")
    store.decide(item_id, "bob", "edit", label="negative")
    store.decide(item_id, "cat", "reject", reason="garbled")
    assert store.get(item_id).status == "disputed"
    assert store.claim("dan") is None  # an ordinary annotator gets no disputed item
    with pytest.raises(Conflict, match="adjudicator"):
        store.decide(item_id, "dan", "approve")
    store.set_role("eve", "adjudicator")
    assert store.role("eve") == "adjudicator" and store.role("dan") == "annotator"
    item = store.claim("eve")
    assert item.id == item_id and item.status == "disputed"
    versions = store.versions(item_id)
    assert [(v["labels"].get("label"), v["votes"]) for v in versions] == [
        ("positive", ["ana"]), ("negative", ["bob"]), (None, ["cat"])]
    store.decide(item_id, "eve", "approve", version=versions[1]["version"])
    item = store.get(item_id)
    assert (item.status, item.labels) == ("edited", {"label": "negative"})
    assert store.decision_log()[-1]["adjudication"] == 1
    assert store.undo_last("eve") == item_id and store.get(item_id).status == "disputed"
    with pytest.raises(UserError, match="unknown role"):
        store.set_role("eve", "boss")


def test_undo_lowers_the_number_needed_again(db_url):
    store, item_id = three_on_one(db_url)
    store.decide(item_id, "ana", "approve")
    store.decide(item_id, "bob", "reject", reason="off-topic")
    assert store.get(item_id).needed == 3
    store.undo_last("bob")
    item = store.get(item_id)
    assert (item.status, item.needed, item.decided) == ("pending", 2, 1)
    store.decide(item_id, "bob", "approve")
    assert store.get(item_id).status == "approved"


def test_an_edit_is_relative_to_the_version_shown_and_empty_edits_are_refused(db_url):
    store = ReviewStore(db_url)
    store.enqueue(make_records(2))
    item = store.claim("ana")
    with pytest.raises(UserError, match="edited text is empty"):
        store.decide(item.id, "ana", "edit", text="   ")
    with pytest.raises(UserError, match="edited label is empty"):
        store.decide(item.id, "ana", "edit", label="")
    with pytest.raises(Conflict, match="no version"):
        store.decide(item.id, "ana", "approve", version="0123456789abcdef")
    assert store.decision_log() == []  # nothing half-written
    store.decide(item.id, "ana", "edit", text="A new sentence.", version=item.version)
    text, labels, _ = store.final_state(item.id)
    assert (text, labels) == ("A new sentence.", item.labels)
    assert store.get(item.id).version == content_version("A new sentence.", item.labels)


def test_migrations_run_on_both_engines(db_url):
    store = ReviewStore(db_url)
    with store.engine.connect() as conn:
        versions = conn.execute(select(schema_migrations.c.version)).scalars().all()
        tables = set(inspect(conn).get_table_names())
        columns = {c["name"] for c in inspect(conn).get_columns("decisions")}
    assert sorted(versions) == [v for v, _, _ in MIGRATIONS]
    assert {"items", "decisions", "votes", "leases", "roles", "schema_migrations"} <= tables
    assert {"version_shown", "version", "adjudication"} <= columns
    ReviewStore(db_url)  # opening again applies nothing and breaks nothing
    with store.engine.begin() as conn:
        assert migrate(conn) == []


def test_upgrade_from_version_2_keeps_and_versions_old_decisions(db_url):
    """A database made before migration 3, with an edited item, opens and reads correctly."""
    engine = create_engine(db_url if "://" in db_url else f"sqlite:///{db_url}")
    records = make_records(2)
    with engine.begin() as conn:
        schema_migrations.create(conn)
        for version, name, step in MIGRATIONS[:2]:
            step(conn)
            conn.execute(schema_migrations.insert().values(version=version, name=name, applied_at=0.0))
        md = MetaData()
        items_v2, decisions_v2, votes_v2 = (Table(n, md, autoload_with=conn) for n in ("items", "decisions", "votes"))
        ids = []
        for n, rec in enumerate(records):
            ids.append(conn.execute(items_v2.insert().values(
                record_id=rec.id, task=rec.task, lang=rec.lang, label=rec.labels["label"], flags=",",
                template_id="", strategy="", doubt=0.5, rand_key=0.1, record_json=rec.model_dump_json(),
                status="edited" if n == 0 else "pending", needed=1, decided=1 if n == 0 else 0, leased=0,
                enqueued_at=0.0, source_file="")).inserted_primary_key[0])
        decision = conn.execute(decisions_v2.insert().values(
            item_id=ids[0], annotator="ana", action="edit", label_before="positive", label_after="neutral",
            labels_after_json=json.dumps({"label": "neutral"}), text_before=records[0].text,
            text_after="Old edit.", reason="", created_at=0.0)).inserted_primary_key[0]
        conn.execute(votes_v2.insert().values(item_id=ids[0], annotator="ana", decision_id=decision))
    engine.dispose()
    store = ReviewStore(db_url)
    edited, fresh = store.get(ids[0]), store.get(ids[1])
    assert (edited.status, edited.text, edited.labels, edited.proposed_by) == (
        "edited", "Old edit.", {"label": "neutral"}, "ana")
    assert edited.version == content_version("Old edit.", {"label": "neutral"})
    assert fresh.is_original and fresh.version == content_version(records[1].text, dict(records[1].labels))
    store.decide(fresh.id, "bob", "approve", version=fresh.version)  # new ids follow on after the old ones
    assert store.get(fresh.id).status == "approved" and store.decision_log()[-1]["id"] > decision
