"""A real browser: `streamlit run` on a loopback port driven by Playwright through Debian's Chromium.

Approves (keyboard), relabels (keyboard), rejects and edits (mouse), checks the database after
each, proves hostile sample text stays literal text, and saves a screenshot (copied to
docs/img/review_app.png when SAVE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from review_app import ReviewStore, enqueue_file
from tests.review_app.conftest import HOSTILE, make_records

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(db: Path) -> Iterator[str]:
    """`streamlit run review_app/app.py -- --db DB` on a free loopback port; yields its URL."""
    port = free_port()
    env = {**os.environ, "SEEDLOOP_REVIEW_PASSWORD": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "review_app/app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--", "--db", str(db)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("streamlit did not start")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def server(tmp_path, accepted):
    db = tmp_path / "review.db"
    enqueue_file(ReviewStore(db), accepted)
    with streamlit_app(db) as url:
        yield url, ReviewStore(db)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def shown(page, text: str):
    """The `st.text` element showing exactly `text` (not the edit box, which holds it too)."""
    return page.get_by_test_id("stText").get_by_text(text, exact=True)


def settle(page) -> None:
    """Wait until the rerun has finished: no running indicator and no stale (faded) elements left,
    so a click or a key reaches the new item's buttons, not the previous item's."""
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    wait_for(lambda: page.locator("[data-testid='stStatusWidgetRunningIcon'], [data-stale='true']").count() == 0)
    time.sleep(0.5)  # the hotkeys are bound in an effect just after the buttons paint


def press(page, key: str) -> None:
    settle(page)
    page.evaluate("document.activeElement && document.activeElement.blur()")  # keys go to the page
    page.keyboard.press(key)


def test_review_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, store = server
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.get_by_label("Your name (recorded with every decision)").fill("ana")
            page.get_by_role("button", name="Start reviewing").click()

            # 1. the most doubtful item is the <script> sample: literal text, nothing executed
            expect(shown(page, HOSTILE[0])).to_be_visible(timeout=30_000)
            assert page.locator("script", has_text="alert(1)").count() == 0
            first = store.list_items()[0].id
            press(page, "a")  # approve by keyboard
            wait_for(lambda: store.get(first).status == "approved")

            # 2. the Markdown image sample: literal text, no image fetched or rendered
            expect(shown(page, HOSTILE[1])).to_be_visible()
            assert page.locator("img[src*='pwned']").count() == 0
            second = store.list_items()[1]
            assert second.label == "negative"
            page.screenshot(path=str(tmp_path / "review_app.png"), full_page=True)
            press(page, "1")  # relabel as positive by keyboard: an edit
            wait_for(lambda: store.get(second.id).status == "edited")
            assert store.final_state(second.id)[1] == {"label": "positive"}

            # 3. reject with a reason, by mouse
            third = store.list_items()[2]
            expect(shown(page, third.record.text)).to_be_visible()
            settle(page)
            page.get_by_role("button", name="Reject").click()
            wait_for(lambda: store.get(third.id).status == "rejected")

            # 4. edit the text, saved from the keyboard
            fourth = store.list_items()[3]
            expect(shown(page, fourth.record.text)).to_be_visible()
            settle(page)
            box = page.get_by_label("Text", exact=True)
            box.fill("Nordvik Shipping's quarterly sales rose 9%.")
            box.press("Control+Enter")  # submits the edit form from the keyboard
            wait_for(lambda: store.get(fourth.id).status == "edited")
            assert store.final_state(fourth.id)[0] == "Nordvik Shipping's quarterly sales rose 9%."
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    assert dialogs == []
    log = store.decision_log()
    assert [d["action"] for d in log] == ["approve", "edit", "reject", "edit"]
    assert {d["annotator"] for d in log} == {"ana"} and log[2]["reason"] == "wrong label"
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "review_app.png", REPO / "docs" / "img" / "review_app.png")


def sign_in(page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_label("Your name (recorded with every decision)").fill(name)
    page.get_by_role("button", name="Start reviewing").click()


def test_three_annotators_vote_on_what_they_see(tmp_path):
    """A approves 'positive', B relabels to 'negative', C is shown B's pending edit and approves it:
    every vote is stored for the version its annotator saw, and the export writes the majority label."""
    from playwright.sync_api import expect, sync_playwright

    from core.io import read_records
    from review_app import export_curated

    db = tmp_path / "review.db"
    store = ReviewStore(db)
    store.enqueue(make_records(1), reviews=2)
    item = store.list_items()[0]
    text = item.record.text
    assert item.label == "positive"
    pages = {}
    with streamlit_app(db) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for name in ("ana", "bob", "cat"):  # three people, three browser contexts (own sessions)
                pages[name] = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()

            ana = pages["ana"]
            sign_in(ana, url, "ana")
            expect(shown(ana, text)).to_be_visible(timeout=30_000)
            expect(shown(ana, "Claimed label: positive")).to_be_visible()
            settle(ana)
            ana.get_by_role("button", name="Approve").click()
            wait_for(lambda: store.get(item.id).decided == 1)

            bob = pages["bob"]
            sign_in(bob, url, "bob")
            expect(shown(bob, "Claimed label: positive")).to_be_visible(timeout=30_000)  # the original
            settle(bob)
            bob.get_by_role("button", name="2 · negative").click()
            wait_for(lambda: store.get(item.id).needed == 3)  # 1:1, a third decides

            cat = pages["cat"]
            sign_in(cat, url, "cat")
            expect(shown(cat, "Edited label: negative")).to_be_visible(timeout=30_000)  # bob's pending edit
            expect(shown(cat, "Edit proposed by bob; the generator claimed label: positive")).to_be_visible()
            cat.screenshot(path=str(tmp_path / "pending_edit.png"), full_page=True)
            settle(cat)
            cat.get_by_role("button", name="Approve").click()
            wait_for(lambda: store.get(item.id).status != "pending")
            expect(cat.get_by_text("Nothing left to review")).to_be_visible()
        except BaseException:
            for name, page in pages.items():
                page.screenshot(path=str(tmp_path / f"failure_{name}.png"), full_page=True)
            raise
        finally:
            browser.close()

    log = store.decision_log()
    assert [(d["annotator"], d["action"], d["label_after"]) for d in log] == [
        ("ana", "approve", "positive"), ("bob", "edit", "negative"), ("cat", "approve", "negative")]
    assert log[2]["version_shown"] == log[1]["version"] != log[0]["version"]  # cat voted for what cat saw
    res = export_curated(store, tmp_path / "curated.jsonl")
    [record] = read_records(res["out"])
    assert record.labels == {"label": "negative"} and record.source == "edited"  # bob + cat: the majority
    assert record.review.status == "edited" and record.provenance["original"]["labels"] == {"label": "positive"}
