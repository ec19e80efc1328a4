"""The annotators' app: `streamlit run review_app/app.py -- --db runs/fin/review.db [--users review_users.txt]`.

This file is the entry point: it reads the arguments, opens the store, signs the annotator in
(`review_app.signin`) and draws one page: the review page (`review_app.review_page`, which shows the
lead's view of a split, `review_app.lead_page`) or the dashboard (`review_app.dashboard_page`).

Sign-in: `--users FILE` (or $SEEDLOOP_REVIEW_USERS), a users file of argon2 password hashes;
`--auth-header NAME` (or $SEEDLOOP_REVIEW_AUTH_HEADER), the name a trusted reverse proxy puts in that
header; Streamlit's OIDC `st.login` when `[auth]` is configured in .streamlit/secrets.toml; otherwise
open sign-in (any name, for one person on their own machine).

One item at a time. Until it has its votes an item is shown as the original alone (independent
review); a split item shows every version side by side with who voted for it and why, to choose one.
Keyboard first: A approve, X reject, 1..9 set the label (approve when unchanged, an edit otherwise),
Ctrl+Enter in the text box saves an edit, S skip, U undo my last decision. Every value that came
from data (text, labels, seeds, reasons, notes) is shown with `st.text` or in a table, never as
Markdown or HTML. A vote on an item that changed since the page showed it is refused, and said so.
`review_app/.streamlit/config.toml` sets `client.toolbarMode = "viewer"`: no Deploy button or
developer menu for annotators (`--client.toolbarMode developer` on the command line brings them back).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

if __package__ in (None, ""):  # `streamlit run review_app/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.errors import UserError
from review_app.dashboard_page import dashboard_page
from review_app.data_value_view import find_report
from review_app.review_page import review_page
from review_app.run_cost_view import find_manifest
from review_app.signin import legacy_password_set, sign_in, sign_out
from review_app.store import ReviewStore

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


@st.cache_resource(show_spinner=False)
def get_store(db: str) -> ReviewStore:
    return ReviewStore(db, create=False)


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
        page = st.sidebar.radio("Page", ["Review", "Dashboard"], key="page", horizontal=True)
        if "flash" in st.session_state:  # the line a button's callback left: before anything that may fail
            kind, message = st.session_state.pop("flash")
            getattr(st, kind)(message)
        if page == "Review":
            review_page(store, annotator)
        else:
            dashboard_page(store, find_report(args.db, args.data_value), find_manifest(args.db))
    except UserError as exc:  # a database that went away, a bad users file: one line on the page
        st.error(str(exc))


main()
