"""The app as a team uses it all day, through AppTest: a sign-in ends when the users file stops backing it,
sign-in attempts are rate-limited, the lead sees why people voted as they did, undo warns before it
reopens what others resolved, and everyone sees how far the queue is."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.io import read_records
from review_app import ReviewStore, export_curated
from review_app.auth import UsersFile
from review_app.cli import main as cli_main
from tests.review_app.conftest import make_records
from tests.review_app.test_app import APP, click, current_id, sign_in, texts


@pytest.fixture
def team(tmp_path, monkeypatch):
    """Four items reviewed twice each, a users file with ana and bob, the app pointed at both."""
    db = tmp_path / "review.db"
    store = ReviewStore(db)
    store.enqueue(make_records(4), reviews=2)
    users = UsersFile(tmp_path / "users.txt")
    users.set_password("ana", "ana-password")
    users.set_password("bob", "bob-password")
    users.save()
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", str(db))
    monkeypatch.setenv("SEEDLOOP_REVIEW_USERS", str(users.path))
    for var in ("SEEDLOOP_REVIEW_PASSWORD", "SEEDLOOP_REVIEW_AUTH_HEADER"):
        monkeypatch.delenv(var, raising=False)
    return store, users.path


def open_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60).run()


def test_a_removed_user_is_signed_out_at_the_next_click(team):
    store, users = team
    at = sign_in(open_app(), "ana", password="ana-password")
    click(at, "approve_")
    assert len(store.decision_log()) == 1
    assert cli_main(["users", "remove", "--file", str(users), "ana"]) == 0  # the lead removes ana
    item_id = current_id(at)
    click(at, "approve_")  # ana's open tab: the next click
    assert len(store.decision_log()) == 1 and store.get(item_id).decided == 0  # nothing recorded as ana
    assert [w.value for w in at.warning] == [
        "Signed out: ana is no longer in the users file; ask your lead to add you again."]
    assert "annotator" not in at.session_state and at.text_input(key="login_name")


def test_a_changed_password_ends_the_sign_in(team):
    store, users = team
    at = sign_in(open_app(), "bob", password="bob-password")
    changed = UsersFile.load(users)
    changed.set_password("bob", "a-new-password")
    changed.save()
    click(at, "reject_")
    assert store.decision_log() == []
    assert [w.value for w in at.warning] == ["Signed out: the password of bob was changed; sign in with the new one."]
    sign_in(at, "bob", password="bob-password")
    assert at.error[0].value == "Wrong name or password."
    sign_in(at, "bob", password="a-new-password")
    assert at.session_state.annotator == "bob"


def test_sign_in_attempts_are_rate_limited_per_name(team):
    at = open_app()
    for _ in range(5):
        sign_in(at, "ana", password="guess")
        assert at.error[0].value == "Wrong name or password."
    sign_in(at, "ana", password="ana-password")  # right, but too late: refused without checking
    assert at.error[0].value.startswith("Too many failed sign-ins for this name or from this address")
    assert "annotator" not in at.session_state
    sign_in(at, "bob", password="bob-password")  # another name from the same address still gets in
    assert at.session_state.annotator == "bob"


def test_the_lead_sees_reasons_notes_and_a_word_diff_and_the_log_says_adjudication(team, tmp_path):
    """ana edits one number and leaves a note, bob rejects it with a reason: a split. The lead (an
    adjudicator) is told her ruling settles it, sees both votes' reasons and notes and the changed
    number, chooses ana's version; the log says adjudication, and the export carries no reason of
    bob's losing reject."""
    store, _ = team
    item = store.list_items()[0]
    text = item.record.text.replace("moved 0%", "moved 15%")
    store.decide(item.id, "ana", "edit", text=text, reason="edited", note="not sure, 12 or 15?")
    store.decide(item.id, "bob", "reject", reason="unnatural or garbled", note="reads like a template")
    store.set_role("lead", "adjudicator")
    users = UsersFile.load(team[1])
    users.set_password("lead", "lead-password")
    users.save()
    at = sign_in(open_app(), "lead", password="lead-password")
    shown = texts(at)
    assert current_id(at) == item.id
    assert "split: your ruling settles it (logged as adjudication)" in shown[0]
    assert "ana: reason: edited · note: not sure, 12 or 15?" in shown
    assert "bob: reason: unnatural or garbled · note: reads like a template" in shown
    assert "text: Nordvik Shipping sample 0: quarterly sales moved [-0%-] {+15%+} year on year." in shown
    click(at, "choose_1_")  # ana's version
    assert store.get(item.id).status == "edited"
    assert store.decision_log()[-1]["phase"] == "adjudication"
    [record] = read_records(export_curated(store, tmp_path / "curated.jsonl")["out"])
    assert record.text == text and record.review.reason == "edited"  # never bob's "unnatural or garbled"


def test_undo_of_an_item_others_resolved_warns_and_names_them_and_progress_is_shown(team):
    store, _ = team
    at = sign_in(open_app(), "ana", password="ana-password")
    assert "left in the queue: 4 (0 disputed)" in [t.value for t in at.sidebar.text]
    first = current_id(at)
    click(at, "approve_")
    store.decide(first, "bob", "approve")  # bob's vote resolves it
    assert store.get(first).status == "approved"
    at.run()
    sidebar = [t.value for t in at.sidebar.text]
    assert "left in the queue: 3 (0 disputed)" in sidebar and "mine today: 1 decision" in sidebar
    assert "team today: 2 decisions by 2 people" in sidebar
    at.button(key="undo").click().run()
    assert at.warning[0].value.startswith(f"Item {first} is already approved, resolved with the votes of bob")
    assert store.get(first).status == "approved"  # nothing undone yet
    at.button(key="undo").click().run()
    assert at.warning[0].value == (f"Undid your last decision on item {first}: it was approved with bob's votes, "
                                   "and is open again.")
    assert store.get(first).status == "pending" and current_id(at) == first


def test_word_diff_and_the_self_consistency_line_say_what_they_show():
    from review_app.evidence import consistency_line, word_diff

    assert word_diff("Net sales rose 12% in Q3.", "Net sales rose 15% in Q3.") == "Net sales rose [-12%-] {+15%+} in Q3."
    assert word_diff("a b c", "a c d") == "a [-b-] c {+d+}"
    # the case: 2 positive, 1 neutral, claimed neutral: the 0.33 is agreement with the claim
    assert consistency_line({"votes": {"positive": 2, "neutral": 1}, "majority": "positive", "agreement": 0.3333,
                             "claimed": "neutral"}) == \
        "majority positive (2 of 3 votes) · agreement with the claimed label (neutral): 0.33"
    assert consistency_line({"votes": {"positive": 1, "neutral": 1, "negative": 1}, "agreement": 0.3333,
                             "claimed": "neutral"}) == \
        "no majority: votes split 1/1/1 · agreement with the claimed label (neutral): 0.33"
