"""The review store survives a PostgreSQL restart (issue 27, item 4): connections are checked before
use, so the decision after a restart goes through; a decision while the server is down is reported
`not saved` (one line, no password) and asked again, never silently lost or half-written. Run by
`make chaos` and by `make test`. These tests restart a server of their own, never the session's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.errors import UserError
from review_app.engine import DatabaseUnavailable
from review_app.local_postgres import LocalPostgres, bindir
from review_app.store import NotSaved, ReviewStore
from tests.review_app.conftest import make_records

pytestmark = [pytest.mark.chaos,
              pytest.mark.skipif(bindir() is None, reason="PostgreSQL server binaries not installed")]
APP = str(Path(__file__).resolve().parents[2] / "review_app" / "app.py")
PASSWORD = "restart-Pw-1b9"


@pytest.fixture(scope="module")
def own_server() -> Iterator[LocalPostgres]:
    """A server of this module's own (it gets restarted; the session's server never is)."""
    try:
        pg = LocalPostgres()
    except UserError as exc:
        pytest.skip(str(exc))
    with pg:
        pg.add_password_role("ana_db", PASSWORD)
        yield pg


@pytest.fixture
def server(own_server: LocalPostgres) -> Iterator[tuple[LocalPostgres, str]]:
    """The module's server, running, and a fresh database named 'review' on it owned by a password role."""
    pg = own_server
    if not pg.running:
        pg.start()
    pg.drop_database("review")
    pg.create_database("review", owner="ana_db")
    yield pg, f"postgresql+psycopg://ana_db:{PASSWORD}@{pg.host}:{pg.port}/review"
    if not pg.running:
        pg.start()
    pg.drop_database("review")


def test_a_restart_between_two_decisions_of_one_annotator(server):
    pg, url = server
    store = ReviewStore(url)
    store.enqueue(make_records(4))
    first = store.claim("ana")
    store.decide(first.id, "ana", "approve", view=first.view)
    pg.restart()  # maintenance: every pooled connection is now dead
    second = store.claim("ana")  # the pool pings, finds the dead connection and reconnects
    assert second.id != first.id
    store.decide(second.id, "ana", "reject", reason="garbled", view=second.view)
    log = store.decision_log()
    assert [(d["item_id"], d["action"]) for d in log] == [(first.id, "approve"), (second.id, "reject")]

    # down while ana decides: reported as not saved, one line, host and database, no password
    third = store.claim("ana")
    pg.stop()
    with pytest.raises(NotSaved) as caught:
        store.decide(third.id, "ana", "approve", view=third.view)
    message = str(caught.value)
    assert message.startswith(f"item {third.id}: not saved, review database unavailable: database 'review' "
                              f"on host 127.0.0.1:{pg.port}")
    assert "\n" not in message and PASSWORD not in message
    with pytest.raises(DatabaseUnavailable):  # reading while down: the same one line
        store.claim("ana")
    pg.start()
    assert len(store.decision_log()) == 2  # nothing half-written
    again = store.claim("ana")  # still ana's: the item comes back to her and she decides it again
    assert again.id == third.id
    store.decide(again.id, "ana", "approve", view=again.view)
    assert store.get(third.id).status == "approved" and len(store.decision_log()) == 3


def test_a_decision_that_committed_as_the_connection_dropped_is_reported_saved(tmp_path):
    """The one case a restart leaves in doubt: the commit reached the database, the answer did not.
    A fake connection drop after a real commit (the real drop cannot be timed here): the store checks
    and reports the decision as stored, not as lost."""
    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(2))
    item = store.claim("ana")
    real = store._decide

    def commit_then_drop(*args, **kwargs):
        real(*args, **kwargs)
        raise DatabaseUnavailable("review database unavailable: fake: server closed the connection unexpectedly")

    store._decide = commit_then_drop
    decision_id = store.decide(item.id, "ana", "approve", view=item.view)
    assert store.decision_log()[-1]["id"] == decision_id and store.get(item.id).status == "approved"


def test_the_app_reconnects_after_a_restart_and_says_not_saved_while_down(server, monkeypatch):
    pg, url = server
    store = ReviewStore(url)
    store.enqueue(make_records(4))
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", url)
    for var in ("SEEDLOOP_REVIEW_PASSWORD", "SEEDLOOP_REVIEW_USERS", "SEEDLOOP_REVIEW_AUTH_HEADER"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="login_name").input("ana")
    at.button[0].click().run()

    def approve() -> int:
        shown = int(at.text[0].value.split()[1])
        at.button(key=f"approve_{shown}").click().run()
        assert not at.exception
        return shown

    first = approve()
    assert at.success[0].value == f"Item {first}: approve recorded."
    pg.restart()
    second = approve()  # the app's store is the same object across reruns: it reconnected by itself
    assert at.success[0].value == f"Item {second}: approve recorded."
    pg.stop()
    third = approve()
    not_saved, down = (e.value for e in at.error)  # the vote, then the page itself: one line each
    assert not_saved.startswith(f"item {third}: not saved, review database unavailable: database 'review'")
    assert down.startswith("review database unavailable: database 'review' on host 127.0.0.1")
    assert all(PASSWORD not in e and "\n" not in e for e in (not_saved, down))
    pg.start()
    at.run()
    assert int(at.text[0].value.split()[1]) == third  # shown again: decide it again
    assert approve() == third and at.success[0].value == f"Item {third}: approve recorded."
    assert [d["item_id"] for d in store.decision_log()] == [first, second, third]
