"""The Streamlit app through AppTest: sign-in (open and users file, rate-limited, ended when the users file
changes), approve, reject (with or without a reason), relabel, edit, skip, undo (warned when others
resolved the item), a split shown side by side with reasons, notes and a word diff, a stale vote refused,
long texts, progress, dashboard, database errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from review_app import ReviewStore, enqueue_file
from tests.review_app.conftest import HOSTILE

APP = str(Path(__file__).resolve().parents[2] / "review_app" / "app.py")


@pytest.fixture
def app(tmp_path, accepted, monkeypatch):
    db = tmp_path / "review.db"
    enqueue_file(ReviewStore(db), accepted)
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", str(db))
    for var in ("SEEDLOOP_REVIEW_PASSWORD", "SEEDLOOP_REVIEW_USERS", "SEEDLOOP_REVIEW_AUTH_HEADER"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at, ReviewStore(db)


def sign_in(at: AppTest, name: str = "ana", password: str | None = None) -> AppTest:
    at.text_input(key="login_name").input(name)
    if password is not None:
        at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    assert not at.exception
    return at


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def click(at: AppTest, prefix: str) -> AppTest:
    key = next(b.key for b in at.button if b.key and b.key.startswith(prefix))
    at.button(key=key).click().run()
    assert not at.exception
    return at


def current_id(at: AppTest) -> int:
    return int(texts(at)[0].split()[1])


def test_flows_are_recorded_in_the_store(app):
    at, store = app
    sign_in(at)
    shown = texts(at)
    assert HOSTILE[0] in shown  # the most doubtful item, shown as literal text
    assert any(t.startswith("en_001: Seed text <b>0</b>") for t in shown)  # seed examples
    # self-consistency votes: the number is named for what it is (the votes here: positive 2, negative 1)
    assert "majority positive (2 of 3 votes) · agreement with the claimed label (positive): 0.67" in shown
    assert {"Approve", "Skip", "1 · positive", "2 · negative", "3 · neutral", "Reject"} <= {b.label for b in at.button}

    first = current_id(at)
    click(at, "approve_")
    assert store.get(first).status == "approved"
    assert at.success[0].value == f"Item {first}: approve recorded."

    second = current_id(at)
    at.selectbox(key=f"reason_{second}").set_value("near-duplicate")
    at.text_input(key=f"note_{second}").input("same as item 1")
    click(at, "reject_")
    assert store.get(second).status == "rejected"
    assert (store.decision_log()[-1]["reason"], store.decision_log()[-1]["note"]) == ("near-duplicate", "same as item 1")

    third = current_id(at)
    assert f"Claimed label: {store.get(third).label}" in texts(at)
    click(at, "label_0_")  # key 1: "positive" on an item claimed "neutral" is a relabel (an edit)
    assert store.get(third).status == "edited"
    assert store.final_state(third)[1] == {"label": "positive"}

    fourth = current_id(at)
    at.text_area(key=f"text_{fourth}").input("A corrected sentence about quarterly profit.")
    at.selectbox(key=f"label_{fourth}").set_value("negative")
    next(b for b in at.button if b.label == "Save edit").click().run()
    text, labels, _ = store.final_state(fourth)
    assert (text, labels) == ("A corrected sentence about quarterly profit.", {"label": "negative"})

    fifth = current_id(at)
    click(at, "skip_")
    assert current_id(at) != fifth and store.get(fifth).status == "pending"

    at.button(key="undo").click().run()
    assert current_id(at) == fourth and store.get(fourth).status == "pending"
    assert [d["action"] for d in store.decision_log()] == ["approve", "reject", "edit", "edit", "undo"]
    assert {d["annotator"] for d in store.decision_log()} == {"ana"}

    # X with the reason box left as it starts: no reason is recorded (none was chosen)
    assert at.selectbox(key=f"reason_{fourth}").value is None
    click(at, "reject_")
    assert store.get(fourth).status == "rejected" and store.decision_log()[-1]["reason"] == ""


def test_dashboard_page(app):
    at, _ = app
    sign_in(at)
    click(at, "approve_")
    click(at, "reject_")
    at.sidebar.radio(key="page").set_value("Dashboard").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["total"] == "12" and metrics["disputed"] == "0"
    assert metrics["pending"] == "10" and metrics["approved"] == "1" and metrics["rejected"] == "1"
    assert {"Raw agreement on the label", "Raw agreement on the decision"} <= set(metrics)
    assert metrics["Items that needed a third vote"] == "0 of 0"
    reasons = next(d.value for d in at.dataframe if list(d.value.columns) == ["reason", "votes"])
    assert reasons.to_dict("records") == [{"reason": "(none given)", "votes": 1}]  # X without a reason


def test_the_old_shared_password_is_refused_with_what_to_do(app, monkeypatch):
    at, _ = app
    monkeypatch.setenv("SEEDLOOP_REVIEW_PASSWORD", "s3cret")
    at.run()
    assert "no longer accepted" in at.error[0].value and "users add" in at.error[0].value
    assert not at.text_input  # no way in


def test_users_file_sign_in_and_nobody_votes_under_anothers_name(app, tmp_path, monkeypatch):
    """With a users file, a name is an identity: bob's name with ana's password does not get in, and
    everything ana does is recorded as ana (the page has no name field once signed in)."""
    from review_app.auth import UsersFile

    at, store = app
    users = UsersFile(tmp_path / "users.txt")
    users.set_password("ana", "ana-password")
    users.set_password("bob", "bob-password")
    users.save()
    monkeypatch.setenv("SEEDLOOP_REVIEW_USERS", str(users.path))
    at.run()
    assert at.text_input(key="login_password").proto.type == at.text_input(key="login_password").proto.PASSWORD
    sign_in(at, "bob", password="ana-password")  # ana trying to vote as bob
    assert at.error[0].value == "Wrong name or password." and "annotator" not in at.session_state
    sign_in(at, "carol", password="ana-password")  # a name not in the file
    assert at.error[0].value == "Wrong name or password." and "annotator" not in at.session_state
    sign_in(at, "ana", password="ana-password")
    assert at.session_state.annotator == "ana" and "Signed in as ana" in [t.value for t in at.sidebar.text]
    assert not [t for t in at.text_input if t.key == "login_name"]
    click(at, "approve_")
    click(at, "reject_")
    assert {d["annotator"] for d in store.decision_log()} == {"ana"}
    at.sidebar.button(key="sign_out").click().run()
    assert "annotator" not in at.session_state and at.text_input(key="login_name")


def test_missing_database_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", str(tmp_path / "nope.db"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "no review database here" in at.error[0].value


def test_support_ticket_reply_can_be_edited(tmp_path, monkeypatch):
    from core.records import Record

    db = tmp_path / "review.db"
    rec = Record.new(task="support_intent", lang="en", text="How do I add three seats to our Team plan?",
                     labels={"intent": "billing.seat_question", "reply": "Go to Admin Console."}, source="synthetic")
    ReviewStore(db).enqueue([rec])
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", str(db))
    at = sign_in(AppTest.from_file(APP, default_timeout=60).run())
    assert "Claimed intent: billing.seat_question" in texts(at) and "Go to Admin Console." in texts(at)
    item_id = current_id(at)
    at.text_area(key=f"out_reply_{item_id}").input("Open Admin Console → Billing → Seats and add 3 seats.")
    at.selectbox(key=f"label_{item_id}").set_value("billing.plan_change")
    next(b for b in at.button if b.label == "Save edit").click().run()
    store = ReviewStore(db)
    assert store.final_state(item_id)[1] == {"intent": "billing.plan_change",
                                             "reply": "Open Admin Console → Billing → Seats and add 3 seats."}
    assert "Nothing left to review" in at.success[-1].value


def test_empty_edit_is_one_clear_message(app):
    at, store = app
    sign_in(at)
    item_id = current_id(at)
    at.text_area(key=f"text_{item_id}").input("")
    next(b for b in at.button if b.label == "Save edit").click().run()
    assert not at.exception
    assert "the edited text is empty" in at.error[0].value
    assert store.decision_log() == [] and current_id(at) == item_id


def split_item(tmp_path, monkeypatch) -> tuple[ReviewStore, int]:
    """One item needing two votes: ana approved 'positive', bob relabelled 'negative': a split."""
    from tests.review_app.conftest import make_records

    db = tmp_path / "review.db"
    store = ReviewStore(db)
    store.enqueue(make_records(1), reviews=2)
    item_id = store.list_items()[0].id
    store.decide(item_id, "ana", "approve")
    store.decide(item_id, "bob", "edit", label="negative", reason="bad news")
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", str(db))
    for var in ("SEEDLOOP_REVIEW_PASSWORD", "SEEDLOOP_REVIEW_USERS", "SEEDLOOP_REVIEW_AUTH_HEADER"):
        monkeypatch.delenv(var, raising=False)
    return store, item_id


def test_a_split_is_shown_side_by_side_and_settled_by_a_button(tmp_path, monkeypatch):
    store, item_id = split_item(tmp_path, monkeypatch)
    at = sign_in(AppTest.from_file(APP, default_timeout=60).run(), "cat")
    shown = texts(at)
    assert "split: your decision breaks the tie" in shown[0]
    assert "Split: your decision breaks the tie." in [w.value for w in at.warning]
    assert "Claimed label: positive" in shown  # the original, as the item stands
    assert [t for t in shown if t.startswith(("Original", "Edit by", "votes:"))] == [
        "Original", "votes: ana", "Edit by bob", "votes: bob"]
    assert [b.label for b in at.button if b.key.startswith("choose_")] == ["Choose this version"] * 2
    click(at, "choose_1_")  # bob's version
    item = store.get(item_id)
    assert (item.status, item.labels) == ("edited", {"label": "negative"})
    assert store.decision_log()[-1]["phase"] == "tiebreak"


def test_a_vote_on_an_item_that_changed_is_refused_and_said_so(tmp_path, monkeypatch):
    store, _ = split_item(tmp_path, monkeypatch)
    at = sign_in(AppTest.from_file(APP, default_timeout=60).run(), "cat")
    assert "split" in texts(at)[0]
    store.undo_last("bob")  # while cat looks at the split, bob takes his vote back
    click(at, "approve_")
    assert "this item changed since you opened it" in at.warning[0].value
    assert [d["annotator"] for d in store.decision_log()] == ["ana", "bob", "bob"]  # cat's vote not counted


def test_long_text_sits_in_a_scroll_box_with_a_warning(tmp_path, monkeypatch):
    from core.records import Record

    db = tmp_path / "review.db"
    text = "Nordvik Shipping " + "sales rose again;" * 1200
    ReviewStore(db).enqueue([Record.new(task="fin_sentiment", lang="en", text=text, labels={"label": "positive"},
                                        source="synthetic")])
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", str(db))
    monkeypatch.delenv("SEEDLOOP_REVIEW_USERS", raising=False)
    at = sign_in(AppTest.from_file(APP, default_timeout=60).run())
    assert f"This text is {len(text):,} characters; the task allows 320" in at.warning[0].value
    assert text in texts(at)


def test_validators_read_one_way_and_reasons_are_in_full(app):
    at, _ = app
    sign_in(at)
    frame = at.dataframe[0].value
    assert list(frame.columns[:3]) == ["validator", "verdict", "score"]
    assert set(frame["verdict"]) <= {"pass", "flag"} and "score measures" in frame.columns
    assert any("doubt 1.00: how unsure the validators are" in c.value for c in at.caption)


def test_unreachable_database_is_one_line_without_the_password_on_the_page(monkeypatch):
    from review_app.local_postgres import free_port

    port = free_port()  # nothing listens there
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", f"postgresql+psycopg://review:Hunter2-secret@127.0.0.1:{port}/teamdb")
    at = AppTest.from_file(APP, default_timeout=60).run()
    [error] = at.error
    assert error.value.startswith("review database unavailable: database 'teamdb' on host 127.0.0.1:")
    assert "Hunter2-secret" not in error.value and "\n" not in error.value and not at.exception


def test_dashboard_shows_the_data_value_report_beside_the_queue(app, tmp_path):
    """generate.py --data-value writes data_value/ next to review.db; the dashboard shows its headline as text."""
    import json

    at, _ = app
    folder = tmp_path / "data_value"
    folder.mkdir()
    verdict = "en (40 synthetic): near-copies of seeds: 12% (5/40); <b>no utility gain</b> within the noise"
    (folder / "data_value.json").write_text(json.dumps({
        "version": 1, "verdict": verdict, "figures": {},
        "by_lang": {"en": {"n": 40, "fidelity": {"nearest_seed": {"near_copy_share": 0.125, "near_copies": 5},
                                                 "distribution": {"precision": 0.4, "recall": 0.1,
                                                                  "mauve": {"score": 0.05}}},
                           "utility": {"comparisons": {"real_synthetic_vs_real": {"accuracy_delta": -0.012,
                                                                                  "mcnemar_p": 0.38}},
                                       "label_agreement": {"agreement": 0.32}}}},
    }))
    sign_in(at)
    at.sidebar.radio(key="page").set_value("Dashboard").run()
    assert not at.exception
    assert verdict in texts(at)  # as text: the markup is shown, not rendered
    row = at.dataframe[-1].value.iloc[0]
    assert row["near-copies of seeds"] == "12% (5)" and row["MAUVE"] == "0.05"
    assert row["real + synthetic vs real"] == "-1.2 points (p = 0.38)"


def test_dashboard_says_how_to_get_a_data_value_report(app):
    at, _ = app
    sign_in(at)
    at.sidebar.radio(key="page").set_value("Dashboard").run()
    assert any("--data-value" in c.value for c in at.caption)


def test_the_judge_is_shown_beside_the_validators_and_against_people_on_the_dashboard(tmp_path, monkeypatch):
    from tests.review_app.test_calibration import _record, judged_db

    db = judged_db(tmp_path / "review.db")
    store = ReviewStore(db)
    store.enqueue([_record(99, 1, 3)])  # pending: the judge (mode flag) would reject it, plausible 1 < 2
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", str(db))
    at = sign_in(AppTest.from_file(APP, default_timeout=60).run())
    validators = at.dataframe[0].value
    assert validators.loc[validators["validator"] == "judge", "verdict"].tolist() == ["flag"]
    scores = next(d.value for d in at.dataframe if "means" in d.value.columns)
    assert scores.to_dict("records")[0] == {"score": "plausible", "value": 1, "means": "p", "threshold": 2, "met": "no"}
    assert "Reasoning: <b>reason 99</b>" in texts(at)  # literal text, never HTML
    assert any(c.value.startswith("LLM judge (planted-judge) would reject it") for c in at.caption)
    at.sidebar.radio(key="page").set_value("Dashboard").run()
    assert not at.exception
    best = next(d.value for d in at.dataframe if "best threshold" in d.value.columns)
    assert best.set_index("score").loc["label_right", "best threshold"] == 3
    assert any(t.startswith("fin_sentiment: 24 votes on 21 items by 2 people") for t in texts(at))


def test_dashboard_shows_what_the_run_beside_the_queue_cost_per_stage(app, tmp_path):
    """generate.py writes manifest.json next to review.db; its usage table is on the dashboard, an unknown
    price said as unknown."""
    import json

    at, _ = app
    usage = {"stages": {"generation": {"model": "gpt-4o-mini", "calls": 30, "failures": 1, "prompt_tokens": 9000,
                                       "completion_tokens": 1500, "texts": 0, "seconds": 12.5, "cost_usd": 0.0123,
                                       "cost_sources": {"server": 30}},
                        "judge": {"model": "my-judge", "calls": 11, "failures": 0, "prompt_tokens": 4000,
                                  "completion_tokens": 900, "texts": 0, "seconds": 3.0, "cost_usd": None,
                                  "cost_sources": {"unpriced": 11},
                                  "cost_note": "model 'my-judge' is not in backends/pricing.py"}},
             "total": {"model": "all", "calls": 41, "failures": 1, "prompt_tokens": 13000, "completion_tokens": 2400,
                       "texts": 0, "seconds": 15.5, "cost_usd": None, "cost_sources": {"server": 30, "unpriced": 11}},
             "prices": {"table": "backends/pricing.py", "as_of": "2026-11-22"}}
    (tmp_path / "manifest.json").write_text(json.dumps({
        "status": "complete", "usage": usage,
        "acceptance": {"target": 10, "accepted": 10, "candidates": 30, "passed": 11, "rate": 0.3667,
                       "rounds": [{}, {}]}}))
    sign_in(at)
    at.sidebar.radio(key="page").set_value("Dashboard").run()
    assert not at.exception
    assert "accepted 10 of 10: 30 candidates in 2 rounds, 11 passed the validators (acceptance 37%)" in texts(at)
    table = at.dataframe[-1].value
    assert list(table["stage"]) == ["generation", "judge", "total"]
    assert list(table["cost"]) == ["$0.0123", "unknown", "unknown"] and list(table["tokens in"]) == [9000, 4000, 13000]
    assert "judge: model 'my-judge' is not in backends/pricing.py" in texts(at)
