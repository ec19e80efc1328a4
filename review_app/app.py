"""The annotators' app: `streamlit run review_app/app.py -- --db runs/fin/review.db`.

One item at a time, as it stands now: the original, or the pending edit and who proposed it (a
vote is recorded for the version shown). Keyboard first: A approve, X reject (with a reason), 1..9 set the label
(approve when unchanged, an edit otherwise), Ctrl+Enter in the text box saves an edit, S skip, U undo my last
decision. Every value that came from data (text, labels, seeds, reasons) is shown with `st.text`
or in a table, never as Markdown or HTML. A shared password is asked for when the environment
variable SEEDLOOP_REVIEW_PASSWORD or the Streamlit secret `review_password` is set.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
from pathlib import Path

import streamlit as st

from core.tasks import load_task

if __package__ in (None, ""):  # `streamlit run review_app/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.errors import UserError
from review_app.metrics import summary
from review_app.store import Item, ReviewStore, label_field

REJECT_REASONS = ["wrong label", "off-topic or not the task", "unnatural or garbled", "near-duplicate",
                  "unsafe or personal data", "other"]
ANY = "(any)"


def db_argument() -> str | None:
    """`--db` after `streamlit run review_app/app.py --`, else $SEEDLOOP_REVIEW_DB (used by AppTest)."""
    argv = sys.argv[1:]
    if any(a == "--db" or a.startswith("--db=") for a in argv):
        parser = argparse.ArgumentParser(prog="streamlit run review_app/app.py --")
        parser.add_argument("--db", help="review database (.db file or SQLAlchemy URL)")
        return parser.parse_known_args(argv)[0].db
    return os.environ.get("SEEDLOOP_REVIEW_DB")


@st.cache_resource
def get_store(db: str) -> ReviewStore:
    return ReviewStore(db, create=False)


def shared_password() -> str | None:
    if os.environ.get("SEEDLOOP_REVIEW_PASSWORD"):
        return os.environ["SEEDLOOP_REVIEW_PASSWORD"]
    try:
        return st.secrets.get("review_password")
    except Exception:  # no secrets file at all: Streamlit raises rather than returning None
        return None


def login() -> None:
    st.title("Review queue")
    needs_password = shared_password() is not None
    with st.form("login"):
        name = st.text_input("Your name (recorded with every decision)", key="login_name")
        password = st.text_input("Shared password", type="password", key="login_password") if needs_password else ""
        if st.form_submit_button("Start reviewing", type="primary"):
            if not name.strip():
                st.error("Enter your name.")
            elif needs_password and not hmac.compare_digest(password.encode(), shared_password().encode()):
                st.error("Wrong password.")
            else:
                st.session_state.annotator = name.strip()
                st.rerun()


def flash(kind: str, message: str) -> None:
    st.session_state.flash = (kind, message)


# ---- callbacks: run before the rerun that shows the next item --------------------------------
def act(store: ReviewStore, item: Item, action: str, **kwargs) -> None:
    # The vote is for the version this page showed, even if someone edited the item meanwhile.
    try:
        store.decide(item.id, st.session_state.annotator, action, version=item.version, **kwargs)
        flash("success", f"Item {item.id}: {action} recorded.")
    except UserError as exc:  # a conflict, an empty edit: one clear line, never a traceback
        flash("error", str(exc))


def on_label(store: ReviewStore, item: Item, label: str, current: str) -> None:
    if label == current:
        act(store, item, "approve")
    else:
        act(store, item, "edit", label=label, reason=f"label {current} -> {label}")


def on_reject(store: ReviewStore, item: Item) -> None:
    reason = st.session_state.get(f"reason_{item.id}") or REJECT_REASONS[0]
    note = (st.session_state.get(f"note_{item.id}") or "").strip()
    act(store, item, "reject", reason=f"{reason}: {note}" if note else reason)


def on_edit(store: ReviewStore, item: Item, name: str) -> None:
    text = st.session_state.get(f"text_{item.id}", item.text)
    label = st.session_state.get(f"label_{item.id}", item.labels.get(name))
    outputs = {key: st.session_state.get(f"out_{key}_{item.id}", value)
               for key, value in item.labels.items() if key != name}
    act(store, item, "edit", text=text, label=label, labels=outputs, reason="edited")


def on_skip(store: ReviewStore, item: Item) -> None:
    store.release(item.id, st.session_state.annotator)
    st.session_state.skipped = [*st.session_state.get("skipped", []), item.id]
    flash("info", f"Item {item.id} skipped.")


def on_undo(store: ReviewStore) -> None:
    item_id = store.undo_last(st.session_state.annotator)
    flash("info", f"Undid your last decision on item {item_id}." if item_id else "Nothing to undo.")


# ---- pages -----------------------------------------------------------------------------------
def filters(store: ReviewStore) -> dict:
    values = store.filter_values()
    st.sidebar.subheader("Queue")
    order = st.sidebar.selectbox("Order", ["doubt", "random"], key="order",
                                 format_func=lambda o: {"doubt": "most doubtful first",
                                                        "random": "random (audit sample)"}[o])
    chosen = {"order": order}
    for key, title in (("lang", "Language"), ("label", "Claimed label"), ("flag", "Validator flag")):
        value = st.sidebar.selectbox(title, [ANY, *values[key]], key=f"filter_{key}")
        chosen[key] = None if value == ANY else value
    return chosen


def show_item(store: ReviewStore, item: Item) -> None:
    rec = item.record
    name = label_field(rec.task)
    step = "disputed: your decision settles it" if item.status == "disputed" else \
        f"decision {item.decided + 1} of {item.needed}"
    st.text(f"Item {item.id} · {rec.task} · {rec.lang} · doubt {item.doubt:.2f} · {step}")
    with st.container(border=True):
        if item.is_original:
            st.caption("Text (shown exactly as written)")
        else:
            st.caption("Pending edit (shown exactly as written); your vote is for this version")
            st.text(f"Edit proposed by {item.proposed_by}; the generator claimed {name}: {rec.labels.get(name, '')}")
        st.text(item.text)
        st.text(f"{'Claimed' if item.is_original else 'Edited'} {name}: {item.labels.get(name, '')}")
    for key, value in item.labels.items():
        if key != name:
            st.caption(key)
            st.text(value)
    if not item.is_original:
        with st.expander("Original text"):
            st.text(rec.text)
    if item.status == "disputed":
        st.caption("Versions and who voted for them")
        st.dataframe([{"version": v["version"], name: v["labels"].get(name, "reject"), "proposed by": v["proposed_by"],
                       "votes": ", ".join(v["votes"]), "text": v["text"]} for v in store.versions(item.id)],
                     hide_index=True)
    left, right = st.columns(2)
    with left:
        st.caption("Validators")
        if rec.verdicts:
            st.dataframe([{"validator": v.name, "passed": v.passed, "score": v.score, "reason": v.reason}
                          for v in rec.verdicts], hide_index=True)
        else:
            st.text("no verdicts")
    with right:
        st.caption("Self-consistency votes")
        sc = rec.verdict("self_consistency")
        votes = (sc.details.get("votes") or {}) if sc else {}
        if votes:
            st.dataframe([{"label": k, "votes": n} for k, n in votes.items()], hide_index=True)
            st.text(f"majority {sc.details.get('majority')} · agreement {sc.details.get('agreement')}")
        else:
            st.text("no votes")
    seeds = rec.provenance.get("seed_texts") or []
    ids = rec.provenance.get("seed_ids") or []
    if seeds or ids:
        with st.expander(f"Seed examples ({len(seeds) or len(ids)})", expanded=True):
            for i, seed in enumerate(seeds or ids):
                st.text(f"{ids[i] if i < len(ids) else i + 1}: {seed}" if seeds else str(seed))


def review_page(store: ReviewStore) -> None:
    chosen = filters(store)
    st.button("Undo my last decision", key="undo", shortcut="U", on_click=on_undo, args=(store,))
    try:
        item = store.claim(st.session_state.annotator, exclude=st.session_state.get("skipped", []), **chosen)
    except UserError as exc:
        st.error(str(exc))
        return
    if item is None:
        if st.session_state.get("skipped"):
            st.info(f"Only items you skipped are left ({len(st.session_state.skipped)}).")
            st.button("Show skipped items again", key="unskip", on_click=st.session_state.pop, args=("skipped",))
        else:
            st.success("Nothing left to review with these filters. Thank you!")
        return
    show_item(store, item)
    rec = item.record
    name = label_field(rec.task)
    current = item.labels.get(name, "")
    labels = task_labels(store, rec.task)
    st.divider()
    cols = st.columns(2 + min(len(labels), 9))
    cols[0].button("Approve", key=f"approve_{item.id}", shortcut="A", type="primary",
                   on_click=act, args=(store, item, "approve"))
    cols[1].button("Skip", key=f"skip_{item.id}", shortcut="S", on_click=on_skip, args=(store, item))
    for i, label in enumerate(labels[:9]):
        cols[i + 2].button(f"{i + 1} · {label}", key=f"label_{i}_{item.id}", shortcut=str(i + 1),
                           on_click=on_label, args=(store, item, label, current))
    r1, r2, r3 = st.columns([2, 3, 1], vertical_alignment="bottom")
    r1.selectbox("Reject reason", REJECT_REASONS, key=f"reason_{item.id}")
    r2.text_input("Note (optional)", key=f"note_{item.id}")
    r3.button("Reject", key=f"reject_{item.id}", shortcut="X", on_click=on_reject, args=(store, item))
    with st.form(f"edit_{item.id}", border=True):
        st.caption("Edit text and label (Ctrl+Enter in the text saves)")
        left, right = st.columns([3, 1])
        left.text_area("Text", value=item.text, key=f"text_{item.id}", height=110)
        options = labels if current in labels else [current, *labels]
        right.selectbox(name, options, index=options.index(current), key=f"label_{item.id}")
        for key, value in item.labels.items():  # other outputs, e.g. a support reply
            if key != name:
                left.text_area(key, value=value, key=f"out_{key}_{item.id}", height=110)
        right.form_submit_button("Save edit", on_click=on_edit, args=(store, item, name))
    st.caption("Keys: A approve · X reject · 1–9 label · Ctrl+Enter save the edited text · S skip · U undo")


@st.cache_data
def _task_labels(task: str) -> list[str]:
    try:
        return load_task(task).label_names
    except UserError:
        return []


def task_labels(store: ReviewStore, task: str) -> list[str]:
    return _task_labels(task) or store.filter_values()["label"]


def dashboard_page(store: ReviewStore) -> None:
    s = summary(store)
    st.title("Dashboard")
    cols = st.columns(4)
    for col, status in zip(cols, ("pending", "approved", "edited", "rejected"), strict=True):
        col.metric(status, s["status"].get(status, 0))
    left, right = st.columns(2)
    left.caption("Items by claimed label")
    left.bar_chart(s["label"], horizontal=True)
    right.caption("Items by language")
    right.bar_chart(s["lang"], horizontal=True)
    st.subheader("Throughput per annotator")
    st.dataframe(s["throughput"], hide_index=True)
    st.subheader("Acceptance by prompt template and sampling strategy")
    st.dataframe(s["acceptance_by_template"], hide_index=True)
    st.dataframe(s["acceptance_by_strategy"], hide_index=True)
    st.subheader("Agreement")
    ia, mh = s["inter_annotator"], s["model_vs_human"]
    a, b, c = st.columns(3)
    a.metric("Inter-annotator alpha", "n/a" if ia["alpha"] is None else ia["alpha"],
             help=f"Krippendorff's alpha (nominal) over {ia['items']} items decided by {ia['raters']} people")
    b.metric("Model vs human agreement", "n/a" if mh["agreement"] is None else mh["agreement"],
             help=f"self-consistency majority vs the reviewer's label over {mh['items']} items")
    c.metric("Generator label kept", "n/a" if mh["claimed_label_kept"] is None else mh["claimed_label_kept"])
    if ia["pairs"]:
        st.caption("Cohen's kappa per pair of annotators who decided the same items")
        st.dataframe(ia["pairs"], hide_index=True)


def main() -> None:
    st.set_page_config(page_title="Review queue", layout="wide")
    db = db_argument()
    if not db:
        st.error("No database: run `streamlit run review_app/app.py -- --db runs/fin/review.db`.")
        return
    try:
        store = get_store(db)
    except UserError as exc:
        st.error(str(exc))
        return
    if "annotator" not in st.session_state:
        login()
        return
    st.sidebar.text(f"Signed in as {st.session_state.annotator}")
    page = st.sidebar.radio("Page", ["Review", "Dashboard"], key="page")
    if "flash" in st.session_state:
        kind, message = st.session_state.pop("flash")
        getattr(st, kind)(message)
    if page == "Review":
        review_page(store)
    else:
        dashboard_page(store)


main()
