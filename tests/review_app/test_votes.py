"""Votes mean what the annotator was shown: independent double review, tie-breaks, adjudication, stale
votes refused, undo; on both engines."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.records import content_version
from review_app.store import Conflict, ReviewStore, Stale
from tests.review_app.conftest import make_records


def two_needed(db_url: str, n: int = 1, **kw) -> tuple[ReviewStore, int]:
    """`n` fin_sentiment items, the first claimed 'positive', each needing two independent decisions."""
    store = ReviewStore(db_url, **kw)
    store.enqueue(make_records(n), reviews=2)
    item = store.list_items()[0]
    assert item.label == "positive" and item.needed == 2 and item.phase == "independent"
    return store, item.id


def test_the_second_annotator_sees_the_original_not_the_first_ones_edit(db_url):
    store, item_id = two_needed(db_url)
    a = store.claim("ana")
    store.decide(a.id, "ana", "edit", label="negative", reason="it is bad news", view=a.view)
    b = store.claim("bob")
    assert b.id == item_id and b.phase == "independent"
    assert (b.is_original, b.labels, b.proposed_by) == (True, {"label": "positive"}, "")  # never ana's edit
    assert b.version == content_version(b.record.text, dict(b.record.labels))
    with pytest.raises(Conflict, match="waiting for independent votes"):  # not even by naming its version
        store.decide(b.id, "bob", "approve", version=store.decision_log()[0]["version"], view=b.view)
    store.decide(b.id, "bob", "approve", view=b.view)
    item = store.get(item_id)
    assert (item.status, item.needed, item.phase) == ("pending", 3, "tiebreak")  # 1:1 after the quorum
    assert item.is_original  # still shown as the original until it resolves
    c = store.claim("cat")
    assert c.id == item_id and c.phase == "tiebreak"
    versions = store.versions(item_id)
    assert [(v["title"], v["labels"], v["votes"]) for v in versions] == [
        ("original", {"label": "positive"}, ["bob"]), ("edit by ana", {"label": "negative"}, ["ana"])]
    store.decide(c.id, "cat", "approve", version=versions[1]["version"], view=c.view)  # "choose this version"
    item = store.get(item_id)
    assert (item.status, item.labels, item.proposed_by) == ("edited", {"label": "negative"}, "ana")
    log = store.decision_log()
    assert [(d["annotator"], d["phase"]) for d in log] == [
        ("ana", "independent"), ("bob", "independent"), ("cat", "tiebreak")]
    assert [d["version_shown"] for d in log[:2]] == [b.version, b.version]  # both were shown the original


def test_independent_votes_are_not_stale_for_each_other(db_url):
    store, item_id = two_needed(db_url)
    a, b = store.claim("ana"), store.claim("bob")  # both open the item before either votes
    assert a.id == b.id == item_id and a.view == b.view == "original"
    store.decide(a.id, "ana", "approve", view=a.view)
    store.decide(b.id, "bob", "approve", view=b.view)  # ana's vote changed nothing bob was shown
    assert store.get(item_id).status == "approved"


def test_a_vote_on_a_view_that_changed_is_refused_not_counted(db_url):
    store, item_id = two_needed(db_url)
    store.decide(item_id, "ana", "approve")
    store.decide(item_id, "bob", "reject", reason="off-topic")
    c = store.claim("cat")
    assert (c.id, c.phase) == (item_id, "tiebreak")
    store.undo_last("bob")  # the split is gone while cat looks at it
    with pytest.raises(Stale, match="changed since you opened it"):
        store.decide(c.id, "cat", "reject", reason="garbled", view=c.view)
    assert [d["annotator"] for d in store.decision_log()] == ["ana", "bob", "bob"]  # nothing of cat's
    again = store.claim("cat")  # cat keeps the lease and sees the item as it stands now
    assert again.id == item_id and again.phase == "independent" and again.view != c.view
    # ...but bob took his slot back with undo: cat is told so and let go, the queue moves on
    with pytest.raises(Conflict, match="claimed by another annotator"):
        store.decide(again.id, "cat", "approve", view=again.view)
    assert store.claim("cat") is None
    store.decide(item_id, "bob", "approve")
    assert store.get(item_id).status == "approved"


def test_three_way_split_goes_to_an_adjudicator_who_picks_a_version(db_url):
    store, item_id = two_needed(db_url)
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
    assert item.id == item_id and item.phase == "adjudication"
    versions = store.versions(item_id)
    assert [(v["title"], v["labels"].get("label"), v["votes"]) for v in versions] == [
        ("original", "positive", ["ana"]), ("edit by bob", "negative", ["bob"]), ("reject", None, ["cat"])]
    store.decide(item_id, "eve", "approve", version=versions[1]["version"], view=item.view)
    item = store.get(item_id)
    assert (item.status, item.labels) == ("edited", {"label": "negative"})
    assert store.decision_log()[-1]["adjudication"] == 1 and store.decision_log()[-1]["phase"] == "adjudication"
    assert store.undo_last("eve") == item_id and store.get(item_id).status == "disputed"
    with pytest.raises(UserError, match="unknown role"):
        store.set_role("eve", "boss")


def test_an_adjudicator_who_takes_a_split_rules_on_it(db_url):
    store, item_id = two_needed(db_url)
    store.decide(item_id, "ana", "approve")
    store.decide(item_id, "bob", "edit", text="A rewritten sentence.")
    store.set_role("eve", "adjudicator")
    item = store.claim("eve")
    assert item.id == item_id and item.phase == "tiebreak"
    store.decide(item_id, "eve", "edit", label="neutral", view=item.view)  # a third version: still settles it
    item = store.get(item_id)
    assert (item.status, item.labels, item.text) == ("edited", {"label": "neutral"}, item.record.text)
    assert store.decision_log()[-1]["phase"] == "adjudication"


def test_undo_lowers_the_number_needed_again(db_url):
    store, item_id = two_needed(db_url)
    store.decide(item_id, "ana", "approve")
    store.decide(item_id, "bob", "reject", reason="off-topic")
    assert store.get(item_id).needed == 3
    store.undo_last("bob")
    item = store.get(item_id)
    assert (item.status, item.needed, item.decided, item.phase) == ("pending", 2, 1, "independent")
    store.decide(item_id, "bob", "approve")
    assert store.get(item_id).status == "approved"
    assert store.decision_log()[-1]["phase"] == "independent"


def test_an_edit_is_relative_to_the_version_shown_and_empty_edits_are_refused(db_url):
    store = ReviewStore(db_url)
    store.enqueue(make_records(2))
    item = store.claim("ana")
    with pytest.raises(UserError, match="edited text is empty"):
        store.decide(item.id, "ana", "edit", text="   ")
    with pytest.raises(UserError, match="edited label is empty"):
        store.decide(item.id, "ana", "edit", label="")
    with pytest.raises(Conflict, match="waiting for independent votes"):
        store.decide(item.id, "ana", "approve", version="0123456789abcdef")
    assert store.decision_log() == []  # nothing half-written
    store.decide(item.id, "ana", "edit", text="A new sentence.", view=item.view)
    text, labels, _ = store.final_state(item.id)
    assert (text, labels) == ("A new sentence.", item.labels)
    assert store.get(item.id).version == content_version("A new sentence.", item.labels)


def test_the_same_edit_made_independently_is_agreement(db_url):
    store, item_id = two_needed(db_url)
    store.decide(item_id, "ana", "edit", label="negative")
    store.decide(item_id, "bob", "edit", label="negative")  # bob never saw ana's edit; same content
    item = store.get(item_id)
    assert (item.status, item.labels) == ("edited", {"label": "negative"})
