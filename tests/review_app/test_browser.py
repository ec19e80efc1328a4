"""A real browser: `streamlit run` on a loopback port driven by Playwright through Debian's Chromium, at
1366 x 768 (a common laptop screen).

Signs in with a users file, finds Approve inside the first screen for a 300-character text and no
Deploy button, approves (keyboard), relabels (keyboard), rejects without a reason and edits (mouse),
checks the database after each, proves hostile sample text stays literal text, and refuses the next
click of a user removed from the users file. Three annotators and a lead: the lead's page shows a
planted note. Screenshots of the review page, the lead's page and the dashboard are copied to
docs/img/ (palette PNGs, to keep them small) when SAVE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
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

NOTE = "not sure, 12 or 15?"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


LONG = "Nordvik Shipping " + "sales rose again;" * 1175
SCREEN = {"width": 1366, "height": 768}
# 300 characters: a long but ordinary sample (fin_sentiment allows 320)
TEXT_300 = ("Nordvik Shipping reported third-quarter net sales of EUR 214.6 million, up 9.2% year on year, as "
            "container volumes recovered on its Baltic routes: the board kept its full-year outlook unchanged, "
            "and said fuel costs would weigh on margins in the fourth quarter, sending its shares 3.45% lower in Oslo.")
assert len(TEXT_300) == 300


def save_doc_image(shot: Path, name: str) -> None:
    """Copy a screenshot to docs/img/NAME when SAVE_SCREENSHOTS=1, as a 64-colour palette PNG (small)."""
    if os.environ.get("SAVE_SCREENSHOTS") != "1":
        return
    from PIL import Image

    (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
    Image.open(shot).convert("RGB").quantize(colors=64).save(REPO / "docs" / "img" / name, optimize=True)


@pytest.fixture(autouse=True)
def patient_expect():
    """Playwright's `expect` gives up after 5 s by default; a rerun on a loaded 2-core machine can take
    longer, so every assertion waits up to a minute (they return as soon as the condition holds)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    yield
    expect.set_options(timeout=5_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(db: Path, *extra: str) -> Iterator[str]:
    """`streamlit run review_app/app.py -- --db DB [EXTRA]` on a free loopback port; yields its URL."""
    port = free_port()
    env = {**os.environ, "SEEDLOOP_REVIEW_PASSWORD": "", "SEEDLOOP_REVIEW_USERS": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "review_app/app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--", "--db", str(db), *extra],
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
    """The review queue with a 300-character sample first (with validators, votes and seeds like the
    others), then the fixture's records (hostile texts first), then a 20,000-character text; the app
    signs in with a users file holding ana."""
    from core.records import Record
    from review_app.auth import UsersFile

    db = tmp_path / "review.db"
    template = make_records(1)[0]
    first = Record.new(task="fin_sentiment", lang="en", text=TEXT_300, labels={"label": "positive"},
                       source="synthetic", provenance=template.provenance, verdicts=template.verdicts,
                       meta={"doubt": 1.0})
    ReviewStore(db).enqueue([first])
    enqueue_file(ReviewStore(db), accepted)
    # the sixth most doubtful: a 20,000-character text (fin_sentiment allows 320)
    ReviewStore(db).enqueue([Record.new(task="fin_sentiment", lang="en", text=LONG, labels={"label": "positive"},
                                        source="synthetic", meta={"doubt": 0.7})])
    users = UsersFile(tmp_path / "users.txt")
    users.set_password("ana", "ana-password")
    users.save()
    with streamlit_app(db, "--users", str(users.path)) as url:
        yield url, ReviewStore(db), users.path


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def shown(page, text: str):
    """The `st.text` element showing exactly `text` (not the edit box, which holds it too)."""
    return page.get_by_test_id("stText").get_by_text(text, exact=True)


def settle(page) -> None:
    """Wait until the rerun has finished: no running indicator, no stale (faded) elements and one Approve
    button (while a rerun swaps items, the previous item's buttons and the new one's can both be on the
    page), so a click or a key reaches the new item's buttons, not the previous item's.

    The page must look calm on two polls in a row: on a loaded machine a rerun the last input started
    can begin just after a first calm look, and draw the buttons twice again."""
    busy = page.locator("[data-testid='stStatusWidgetRunningIcon'], [data-stale='true']")
    approve = page.get_by_role("button", name="Approve")

    def calm() -> bool:
        return busy.count() == 0 and approve.count() == 1 and approve.first.is_visible()

    def calm_twice() -> bool:
        if not calm():
            return False
        time.sleep(0.3)
        return calm()

    wait_for(calm_twice)


def press(page, key: str, done) -> None:
    """Press `key` until `done()` (the store shows its effect). The hotkeys are bound in an effect just
    after the buttons paint, so on a loaded machine a first press can come too early and be lost;
    pressing again is safe: each button is bound to the item it was drawn for, so a late second press
    reaches an item that is already decided and is refused, never applied to the next item."""
    for _ in range(5):
        settle(page)
        page.evaluate("document.activeElement && document.activeElement.blur()")  # keys go to the page
        page.keyboard.press(key)
        try:
            wait_for(done, timeout=10.0)
            return
        except AssertionError:
            continue
    raise AssertionError(f"key {key!r} had no effect")


def in_first_screen(page, name: str) -> dict:
    """The button's box, asserted to lie wholly inside the first screen (page not scrolled)."""
    page.evaluate("window.scrollTo(0, 0)")
    box = page.get_by_role("button", name=name).bounding_box()  # its name ends with the key hint
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= SCREEN["height"], box
    return box


def click_until(page, name: str, done) -> None:
    """Click the button until `done()`. Entering a note starts a rerun that can draw the buttons twice
    for a moment (a strict-mode error) or swallow a click; clicking again is safe for the same reason
    a second key press is (see `press`)."""
    from playwright.sync_api import Error

    for _ in range(5):
        settle(page)
        try:
            page.get_by_role("button", name=name).click(timeout=10_000)
            wait_for(done, timeout=10.0)
            return
        except (Error, AssertionError):
            continue
    raise AssertionError(f"button {name!r} had no effect")


def test_review_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, store, users = server
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport=SCREEN)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.get_by_label("Your name (recorded with every decision)").fill("ana")
            page.get_by_label("Password", exact=True).fill("ana-password")
            page.get_by_role("button", name="Start reviewing").click()

            # 1. a 300-character sample: decided without scrolling, and no developer toolbar
            items = store.list_items()
            expect(shown(page, TEXT_300)).to_be_visible(timeout=30_000)
            settle(page)
            approve = in_first_screen(page, "Approve")
            for name in ("Reject", "1 · positive", "3 · neutral"):
                in_first_screen(page, name)
            page.screenshot(path=str(tmp_path / "review_page.png"))
            assert page.get_by_test_id("stAppDeployButton").count() == 0
            page.get_by_test_id("stMainMenu").click()
            expect(page.get_by_text("Print", exact=True)).to_be_visible()  # the viewer's menu only
            assert page.get_by_text("Clear cache").count() == 0 and page.get_by_text("Rerun").count() == 0
            page.keyboard.press("Escape")
            press(page, "a", lambda: store.get(items[0].id).status == "approved")  # approve by keyboard

            # 2. the most doubtful fixture item is the <script> sample: literal text, nothing executed
            expect(shown(page, HOSTILE[0])).to_be_visible(timeout=30_000)
            assert page.locator("script", has_text="alert(1)").count() == 0
            press(page, "a", lambda: store.get(items[1].id).status == "approved")

            # 3. the Markdown image sample: literal text, no image fetched or rendered
            expect(shown(page, HOSTILE[1])).to_be_visible()
            assert page.locator("img[src*='pwned']").count() == 0
            second = items[2]
            assert second.label == "negative"
            press(page, "1", lambda: store.get(second.id).status == "edited")  # relabel as positive by keyboard
            assert store.final_state(second.id)[1] == {"label": "positive"}

            # 4. reject by mouse, the reason box left as it starts: no reason recorded
            third = items[3]
            expect(shown(page, third.record.text)).to_be_visible()
            settle(page)
            page.get_by_role("button", name="Reject").click()
            wait_for(lambda: store.get(third.id).status == "rejected")

            # 5. edit the text, saved from the keyboard
            fourth = items[4]
            expect(shown(page, fourth.record.text)).to_be_visible()
            settle(page)
            box = page.get_by_label("Text", exact=True)
            box.fill("Nordvik Shipping's quarterly sales rose 9%.")
            box.press("Control+Enter")  # submits the edit form from the keyboard
            wait_for(lambda: store.get(fourth.id).status == "edited")
            assert store.final_state(fourth.id)[0] == "Nordvik Shipping's quarterly sales rose 9%."

            # 6. a 20,000-character text: a warning, a bounded scroll box, Approve still on the first screen
            expect(page.get_by_text(f"This text is {len(LONG):,} characters; the task allows 320")).to_be_visible()
            settle(page)
            in_first_screen(page, "Approve")

            # 7. the lead removes ana from the users file: her next click is refused, with one line why
            long_item = next(i for i in store.list_items(status="pending") if i.text == LONG)
            assert store.holds_lease(long_item.id, "ana")  # the item on ana's screen
            res = subprocess.run([sys.executable, "-m", "review_app", "users", "remove", "--file", str(users), "ana"],
                                 cwd=REPO, capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr
            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_text("Signed out: ana is no longer in the users file")).to_be_visible()
            expect(page.get_by_role("button", name="Start reviewing")).to_be_visible()
            assert store.get(long_item.id).decided == 0
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    assert dialogs == [] and approve["y"] < SCREEN["height"]
    log = store.decision_log()
    assert [d["action"] for d in log] == ["approve", "approve", "edit", "reject", "edit"]
    assert {d["annotator"] for d in log} == {"ana"} and log[3]["reason"] == ""
    save_doc_image(tmp_path / "review_page.png", "review_page.png")


def sign_in(page, url: str, name: str) -> None:  # open sign-in: the name alone
    page.goto(url)
    page.get_by_label("Your name (recorded with every decision)").fill(name)
    page.get_by_role("button", name="Start reviewing").click()


def test_three_annotators_independent_double_review_and_an_adjudicator(tmp_path):
    """Two items, each reviewed twice. Ana relabels the second, with a note; Bob is shown the original
    (never ana's edit or note) and approves it: a split. Chris, an adjudicator (the lead), is told his
    ruling settles it, sees both versions side by side with who voted for each, ana's note and what her
    version changed, and settles it with a button; the log says adjudication. Agreement comes from
    the independent votes only: raw agreement 0.5 (one item agreed, one split), one of two items
    needed a third vote, and the dashboard says so."""
    from playwright.sync_api import expect, sync_playwright

    from core.io import read_records
    from review_app import export_curated
    from review_app.metrics import krippendorff_alpha, summary

    db = tmp_path / "review.db"
    store = ReviewStore(db)
    store.enqueue(make_records(2), reviews=2)
    agreed, split = store.list_items()
    assert (agreed.label, split.label) == ("positive", "negative")
    store.set_role("chris", "adjudicator")
    pages = {}
    with streamlit_app(db) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for name in ("ana", "bob", "chris"):  # three people, three browser contexts (own sessions)
                pages[name] = browser.new_context(viewport=SCREEN).new_page()

            ana = pages["ana"]
            sign_in(ana, url, "ana")
            expect(shown(ana, agreed.record.text)).to_be_visible(timeout=30_000)
            settle(ana)
            ana.get_by_role("button", name="Approve").click()
            wait_for(lambda: store.get(agreed.id).decided == 1)
            expect(shown(ana, split.record.text)).to_be_visible()
            settle(ana)
            ana.get_by_label("Note (optional, kept with your vote)").fill(NOTE)
            ana.get_by_label("Note (optional, kept with your vote)").press("Tab")  # the value reaches the app
            click_until(ana, "3 · neutral", lambda: store.get(split.id).decided == 1)  # ana relabels it

            bob = pages["bob"]
            sign_in(bob, url, "bob")
            expect(shown(bob, agreed.record.text)).to_be_visible(timeout=30_000)
            settle(bob)
            bob.get_by_role("button", name="Approve").click()
            wait_for(lambda: store.get(agreed.id).status == "approved")
            expect(shown(bob, split.record.text)).to_be_visible()
            expect(shown(bob, "Claimed label: negative")).to_be_visible()  # the original, not ana's 'neutral'
            assert bob.get_by_text("Edit by ana").count() == 0 and bob.get_by_text("votes: ana").count() == 0
            assert bob.get_by_text(NOTE, exact=False).count() == 0
            expect(bob.get_by_text("independent review: you see the original only", exact=False)).to_be_visible()
            settle(bob)
            bob.get_by_role("button", name="Approve").click()
            wait_for(lambda: store.get(split.id).needed == 3)  # 1:1 after the quorum: a split

            chris = pages["chris"]
            sign_in(chris, url, "chris")
            expect(chris.get_by_text("split: your ruling settles it (logged as adjudication)",
                                     exact=False).first).to_be_visible(timeout=30_000)
            expect(shown(chris, "Edit by ana")).to_be_visible()
            expect(shown(chris, "votes: ana")).to_be_visible()
            expect(shown(chris, f"ana: reason: label negative -> neutral · note: {NOTE}")).to_be_visible()
            expect(shown(chris, "label: negative -> neutral")).to_be_visible()
            expect(shown(chris, "Original")).to_be_visible()
            expect(shown(chris, "votes: bob")).to_be_visible()
            settle(chris)
            chris.screenshot(path=str(tmp_path / "lead_page.png"))
            chris.get_by_role("button", name="Choose this version").nth(1).click()  # ana's version
            wait_for(lambda: store.get(split.id).status != "pending")
            expect(chris.get_by_text("Nothing left to review")).to_be_visible()

            chris.get_by_text("Dashboard", exact=True).click()
            expect(chris.get_by_text("Raw agreement on the label")).to_be_visible(timeout=30_000)

            def metric(label: str):
                return chris.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")

            expect(metric("Raw agreement on the label")).to_have_text("0.5")
            expect(metric("Raw agreement on the decision")).to_have_text("0.5")
            expect(metric("Items that needed a third vote")).to_have_text("1 of 2")
            expect(metric("total")).to_have_text("2")
            chris.screenshot(path=str(tmp_path / "dashboard.png"))
        except BaseException:
            for name, page in pages.items():
                page.screenshot(path=str(tmp_path / f"failure_{name}.png"), full_page=True)
            raise
        finally:
            browser.close()

    log = store.decision_log()
    assert [(d["annotator"], d["action"], d["label_after"], d["phase"]) for d in log] == [
        ("ana", "approve", "positive", "independent"), ("ana", "edit", "neutral", "independent"),
        ("bob", "approve", "positive", "independent"), ("bob", "approve", "negative", "independent"),
        ("chris", "approve", "neutral", "adjudication")]
    assert log[3]["version"] == log[3]["version_shown"] != log[1]["version"]  # bob voted for the original he saw
    ia = summary(store)["inter_annotator"]
    independent = {agreed.id: {"ana": "positive", "bob": "positive"}, split.id: {"ana": "neutral", "bob": "negative"}}
    assert (ia["raw_agreement"], ia["raters"], ia["items"]) == (0.5, 2, 2)
    assert ia["alpha"] == (None if krippendorff_alpha(independent) is None else round(krippendorff_alpha(independent), 3))
    res = export_curated(store, tmp_path / "curated.jsonl")
    records = {r.provenance.get("original", {}).get("id", r.id): r for r in read_records(res["out"])}
    assert records[split.record.id].labels == {"label": "neutral"} and records[split.record.id].source == "edited"
    assert records[agreed.record.id].source == "synthetic"
    assert log[1]["note"] == NOTE and log[1]["reason"] == "label negative -> neutral"
    save_doc_image(tmp_path / "lead_page.png", "review_lead_page.png")
    save_doc_image(tmp_path / "dashboard.png", "review_dashboard.png")
