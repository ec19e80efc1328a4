"""The annotators' app: `streamlit run review_app/app.py -- --db runs/fin/review.db [--users review_users.txt]`.

Sign-in (`review_app.auth`): `--users FILE` (or $SEEDLOOP_REVIEW_USERS), a users file of argon2
password hashes; `--auth-header NAME` (or $SEEDLOOP_REVIEW_AUTH_HEADER), the name a trusted reverse
proxy puts in that header; Streamlit's OIDC `st.login` when `[auth]` is configured in
.streamlit/secrets.toml; otherwise open sign-in (any name, for one person on their own machine).

One item at a time. Until it has its votes an item is shown as the original alone (independent
review); a split item shows every version side by side with who voted for it, to choose one. Keyboard
first: A approve, X reject (with a reason), 1..9 set the label (approve when unchanged, an edit
otherwise), Ctrl+Enter in the text box saves an edit, S skip, U undo my last decision. Every value
that came from data (text, labels, seeds, reasons) is shown with `st.text` or in a table, never as
Markdown or HTML. A vote on an item that changed since the page showed it is refused, and said so.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

import streamlit as st

if __package__ in (None, ""):  # `streamlit run review_app/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.errors import UserError
from core.tasks import load_task
from review_app.auth import UsersFile, choose_mode, header_identity
from review_app.data_value_view import find_report, show_data_value
from review_app.metrics import summary
from review_app.store import Item, ReviewStore, Stale, label_field

REJECT_REASONS = ["wrong label", "off-topic or not the task", "unnatural or garbled", "near-duplicate",
                  "unsafe or personal data", "other"]
ANY = "(any)"
SCROLL_CHARS = 600  # longer texts go in a scroll box of fixed height, so the buttons stay in view
DOUBT_LEGEND = ("doubt {d:.2f}: how unsure the validators are about this sample, from 0 (no doubt) to 1 (as "
                "doubtful as a rejection); the queue shows the most doubtful first")
# What each validator's raw score measures, and which way is good (the verdict column is the one direction).
SCORE_MEANING = {
    "schema": "1 = the sample parses and fits the task's schema",
    "language": "probability that the text is in the record's language (higher is better)",
    "quality": "share of repeated n-grams (lower is better)",
    "near_duplicates": "similarity to the nearest other sample (lower is better)",
    "dedup": "similarity to the nearest other sample (lower is better)",
    "self_consistency": "share of the model's re-labellings that agree with the claimed label (higher is better)",
    "neighbour_agreement": "share of the nearest seed examples with the claimed label (higher is better)",
}
PHASE_LINE = {
    "independent": "independent review: you see the original only; decision {n} of {of}",
    "tiebreak": "split: your decision breaks the tie",
    "adjudication": "disputed: your ruling settles it",
}
LEGACY_PASSWORD = ("SEEDLOOP_REVIEW_PASSWORD (one shared password) is no longer accepted: it let any annotator "
                   "vote under another's name. Give everyone their own: `python -m review_app users add --file "
                   "review_users.txt NAME`, then start the app with `-- --users review_users.txt`.")


def app_arguments() -> argparse.Namespace:
    """`--db`, `--users`, `--auth-header` after `streamlit run review_app/app.py --`; each falls back to
    $SEEDLOOP_REVIEW_DB, $SEEDLOOP_REVIEW_USERS, $SEEDLOOP_REVIEW_AUTH_HEADER (what AppTest sets)."""
    parser = argparse.ArgumentParser(prog="streamlit run review_app/app.py --")
    parser.add_argument("--db", default=os.environ.get("SEEDLOOP_REVIEW_DB"),
                        help="review database (.db file or SQLAlchemy URL)")
    parser.add_argument("--users", default=os.environ.get("SEEDLOOP_REVIEW_USERS") or None,
                        help="users file of password hashes (python -m review_app users add)")
    parser.add_argument("--auth-header", default=os.environ.get("SEEDLOOP_REVIEW_AUTH_HEADER") or None,
                        help="take the annotator's name from this header, set by a trusted reverse proxy")
    parser.add_argument("--data-value", default=None, metavar="PATH",
                        help="data-value report to show on the dashboard (default: data_value/ beside the .db file)")
    return parser.parse_known_args(sys.argv[1:])[0]


def db_argument() -> str | None:
    return app_arguments().db


@st.cache_resource
def get_store(db: str) -> ReviewStore:
    return ReviewStore(db, create=False)


@st.cache_resource
def get_users(path: str, mtime: float) -> UsersFile:  # mtime: a changed file is read again
    return UsersFile.load(path)


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0  # UsersFile.load says what is wrong, in one line


def legacy_password_set() -> bool:
    if os.environ.get("SEEDLOOP_REVIEW_PASSWORD"):
        return True
    try:
        return bool(st.secrets.get("review_password"))
    except Exception:  # no secrets file at all: Streamlit raises rather than returning None
        return False


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:
        return False


# ---- sign-in ---------------------------------------------------------------------------------
def sign_in(args: argparse.Namespace) -> str | None:
    """The signed-in annotator's name for this session, or None after drawing the sign-in page."""
    mode = choose_mode(users_file=args.users, header=args.auth_header, oidc=oidc_configured())
    st.session_state.auth_mode = mode
    if mode == "header":
        name = header_identity(st.context.headers, args.auth_header)
        if name is None:
            st.error(f"No {args.auth_header} header came with this request: open the app through the sign-in "
                     "proxy (it sets the header), not on its own port.")
        return name
    if mode == "oidc":
        if not st.user.is_logged_in:
            st.title("Review queue")
            st.button("Sign in", type="primary", on_click=st.login)
            return None
        return str(st.user.get("email") or st.user.get("name") or "").strip() or None
    if "annotator" in st.session_state:
        return st.session_state.annotator
    st.title("Review queue")
    users = get_users(args.users, _mtime(args.users)) if mode == "users" else None
    if users is None:
        st.caption("Open sign-in: names are not checked. For a team, start the app with a users file, a "
                   "sign-in proxy or OIDC (README, Review).")
    with st.form("login"):
        name = st.text_input("Your name (recorded with every decision)", key="login_name")
        password = st.text_input("Password", type="password", key="login_password") if users else ""
        if st.form_submit_button("Start reviewing", type="primary"):
            if not name.strip():
                st.error("Enter your name.")
            elif users is not None and not users.verify(name.strip(), password):
                st.error("Wrong name or password.")
            else:
                st.session_state.annotator = name.strip()
                st.rerun()
    return None


def sign_out() -> None:
    if st.session_state.get("auth_mode") == "oidc":
        st.logout()
    for key in ("annotator", "skipped", "flash"):
        st.session_state.pop(key, None)


def flash(kind: str, message: str) -> None:
    st.session_state.flash = (kind, message)


# ---- callbacks: run before the rerun that shows the next item --------------------------------
def act(store: ReviewStore, item: Item, action: str, **kwargs) -> None:
    # `view`: what this page showed; if the item has changed since, the store refuses the vote.
    try:
        store.decide(item.id, st.session_state.annotator, action, view=item.view, **kwargs)
        flash("success", f"Item {item.id}: {action} recorded.")
    except Stale as exc:
        flash("warning", str(exc))
    except UserError as exc:  # a conflict, an empty edit, a database gone: one clear line, never a traceback
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


def on_choose(store: ReviewStore, item: Item, version: str) -> None:
    if version == "reject":
        act(store, item, "reject", reason="chose reject")
    else:
        act(store, item, "approve", version=version, reason="chose this version")


def on_edit(store: ReviewStore, item: Item, name: str) -> None:
    text = st.session_state.get(f"text_{item.id}", item.text)
    label = st.session_state.get(f"label_{item.id}", item.labels.get(name))
    outputs = {key: st.session_state.get(f"out_{key}_{item.id}", value)
               for key, value in item.labels.items() if key != name}
    act(store, item, "edit", text=text, label=label, labels=outputs, reason="edited")


def on_skip(store: ReviewStore, item: Item) -> None:
    try:
        store.release(item.id, st.session_state.annotator)
    except UserError as exc:
        flash("error", str(exc))
        return
    st.session_state.skipped = [*st.session_state.get("skipped", []), item.id]
    flash("info", f"Item {item.id} skipped.")


def on_undo(store: ReviewStore) -> None:
    try:
        item_id = store.undo_last(st.session_state.annotator)
    except UserError as exc:
        flash("error", str(exc))
        return
    flash("info", f"Undid your last decision on item {item_id}." if item_id else "Nothing to undo.")


# ---- pieces of the page ----------------------------------------------------------------------
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


@st.cache_data
def _input_limit(task: str) -> int | None:
    try:
        return load_task(task).input_max_chars
    except UserError:
        return None


def long_text(text: str, task: str, *, height: int = 260) -> None:
    """`text` literally; a long one in a scroll box of fixed height, with a warning above the task's limit."""
    limit = _input_limit(task)
    if limit is not None and len(text) > limit:
        st.warning(f"This text is {len(text):,} characters; the task allows {limit:,}. Shown in a scroll box; "
                   "reject it or shorten it in the edit box.")
    if len(text) > SCROLL_CHARS or (limit is not None and len(text) > limit):
        with st.container(height=height, border=False):
            st.text(text)
    else:
        st.text(text)


def consistency_line(details: dict) -> str:
    """The self-consistency votes in words: a majority only when one label has more votes than any other."""
    votes = details.get("votes") or {}
    counts = Counter(votes).most_common()
    split = "/".join(str(n) for _, n in counts)
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return f"no majority: votes split {split} · agreement with the claimed label {details.get('agreement')}"
    return f"majority {details.get('majority')} · agreement {details.get('agreement')}"


def validators_table(item: Item) -> None:
    rec = item.record
    st.caption("Validators: verdict first (pass or flag), the raw score beside it and what it measures")
    if not rec.verdicts:
        st.text("no verdicts")
        return
    st.dataframe([{"validator": v.name, "verdict": "pass" if v.passed else "flag",
                   "score": None if v.score is None else round(v.score, 3),
                   "score measures": SCORE_MEANING.get(v.name, "as the validator reports it"),
                   "reason": v.reason} for v in rec.verdicts], hide_index=True,
                 column_config={"reason": st.column_config.TextColumn(help="full text below, under 'Reasons in full'")})
    reasons = [v for v in rec.verdicts if v.reason]
    if reasons:
        with st.expander(f"Reasons in full ({len(reasons)})"):
            for v in reasons:
                st.text(f"{v.name} ({'pass' if v.passed else 'flag'}): {v.reason}")


def versions_side_by_side(store: ReviewStore, item: Item, name: str) -> None:
    """Each version with who voted for it and a button to choose it (tie-break and adjudication)."""
    versions = store.versions(item.id)
    st.caption("The versions and who voted for them: choose one (or make your own edit below)")
    for col, (i, v) in zip(st.columns(len(versions)), enumerate(versions), strict=True):
        with col, st.container(border=True):
            st.text(v["title"].capitalize())
            st.text(f"votes: {', '.join(v['votes']) or 'none'}")
            if v["version"] != "reject":
                st.text(f"{name}: {v['labels'].get(name, '')}")
                long_text(v["text"], item.record.task, height=180)
                for key, value in v["labels"].items():
                    if key != name:
                        st.caption(key)
                        st.text(value)
            st.button("Choose reject" if v["version"] == "reject" else "Choose this version",
                      key=f"choose_{i}_{item.id}", on_click=on_choose, args=(store, item, v["version"]))


def show_item(store: ReviewStore, item: Item) -> None:
    rec = item.record
    name = label_field(rec.task)
    line = PHASE_LINE.get(item.phase, "{status}").format(n=item.decided + 1, of=item.base_needed, status=item.status)
    st.text(f"Item {item.id} · {rec.task} · {rec.lang} · {line}")
    st.caption(DOUBT_LEGEND.format(d=item.doubt))
    if item.phase in ("tiebreak", "adjudication"):
        st.warning(PHASE_LINE[item.phase].capitalize() + ".")
    with st.container(border=True):
        st.caption("Text (shown exactly as written)")
        long_text(item.text, rec.task)
        st.text(f"Claimed {name}: {item.labels.get(name, '')}")
    for key, value in item.labels.items():
        if key != name:
            st.caption(key)
            st.text(value)
    if item.phase in ("tiebreak", "adjudication"):
        versions_side_by_side(store, item, name)
    left, right = st.columns(2)
    with left:
        validators_table(item)
    with right:
        st.caption("Self-consistency votes (the model re-labelling its own sample)")
        sc = rec.verdict("self_consistency")
        votes = (sc.details.get("votes") or {}) if sc else {}
        if votes:
            st.dataframe([{"label": k, "votes": n} for k, n in votes.items()], hide_index=True)
            st.text(consistency_line(sc.details))
        else:
            st.text("no votes")
    seeds = rec.provenance.get("seed_texts") or []
    ids = rec.provenance.get("seed_ids") or []
    if seeds or ids:
        with st.expander(f"Seed examples ({len(seeds) or len(ids)})", expanded=True):
            for i, seed in enumerate(seeds or ids):
                st.text(f"{ids[i] if i < len(ids) else i + 1}: {seed}" if seeds else str(seed))


# ---- pages -----------------------------------------------------------------------------------
def review_page(store: ReviewStore) -> None:
    chosen = filters(store)
    st.button("Undo my last decision", key="undo", shortcut="U", on_click=on_undo, args=(store,))
    item = store.claim(st.session_state.annotator, exclude=st.session_state.get("skipped", []), **chosen)
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
                   on_click=act, args=(store, item, "approve"),
                   help="a vote for the text and label shown above (the original)")
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


def dashboard_page(store: ReviewStore, report: Path | None = None) -> None:
    s = summary(store)
    st.title("Dashboard")
    statuses = ("pending", "disputed", "approved", "edited", "rejected")
    cols = st.columns(1 + len(statuses))
    cols[0].metric("total", s["total"])
    for col, status in zip(cols[1:], statuses, strict=True):
        col.metric(status, s["status"].get(status, 0))
    left, right = st.columns(2)
    left.caption("Items by claimed label")
    left.bar_chart(s["label"], horizontal=True)
    right.caption("Items by language")
    right.bar_chart(s["lang"], horizontal=True)
    st.subheader("Throughput per annotator")
    st.dataframe(s["throughput"], hide_index=True)
    st.subheader("Acceptance by prompt template and sampling strategy")
    st.caption("Over resolved items: approved (the original survived unchanged), edited, rejected")
    st.dataframe(s["acceptance_by_template"], hide_index=True)
    st.dataframe(s["acceptance_by_strategy"], hide_index=True)
    st.subheader("Agreement")
    ia, mh = s["inter_annotator"], s["model_vs_human"]
    st.caption("Between annotators: independent votes only (cast before anyone else's vote could be seen); "
               "tie-breaks and adjudicators' rulings are left out")
    a, b, c, d = st.columns(4)
    a.metric("Inter-annotator alpha", "n/a" if ia["alpha"] is None else ia["alpha"],
             help=f"Krippendorff's alpha (nominal) over {ia['items']} items decided by {ia['raters']} people")
    b.metric("Raw agreement", "n/a" if ia["raw_agreement"] is None else ia["raw_agreement"],
             help="share of agreeing pairs of independent votes on the same item")
    c.metric("Model vs human agreement", "n/a" if mh["agreement"] is None else mh["agreement"],
             help=f"self-consistency majority vs the reviewer's label over {mh['items']} items")
    d.metric("Generator label kept", "n/a" if mh["claimed_label_kept"] is None else mh["claimed_label_kept"])
    if ia["pairs"]:
        st.caption("Cohen's kappa per pair of annotators who decided the same items")
        st.dataframe(ia["pairs"], hide_index=True)
    show_data_value(report)


def main() -> None:
    st.set_page_config(page_title="Review queue", layout="wide")
    args = app_arguments()
    if not args.db:
        st.error("No database: run `streamlit run review_app/app.py -- --db runs/fin/review.db`.")
        return
    if legacy_password_set() and not args.users:
        st.error(LEGACY_PASSWORD)
        return
    try:
        store = get_store(args.db)
        annotator = sign_in(args)
        if annotator is None:
            return
        st.session_state.annotator = annotator
        st.sidebar.text(f"Signed in as {annotator}")
        if st.session_state.auth_mode in ("users", "open", "oidc"):
            st.sidebar.button("Sign out", key="sign_out", on_click=sign_out)
        page = st.sidebar.radio("Page", ["Review", "Dashboard"], key="page")
        if "flash" in st.session_state:
            kind, message = st.session_state.pop("flash")
            getattr(st, kind)(message)
        if page == "Review":
            review_page(store)
        else:
            dashboard_page(store, find_report(args.db, args.data_value))
    except UserError as exc:  # a database that went away, a bad users file: one line on the page
        st.error(str(exc))


main()
