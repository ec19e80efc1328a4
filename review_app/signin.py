"""Signing annotators in on the page, and ending a sign-in the users file no longer backs.

    name = sign_in(args)       # the signed-in name, or None after drawing the sign-in form
    still_signed_in()          # before every action: False (sign-in ended, one line why) when the
                               # users file dropped the name or holds another password for it now
    sign_out()

Ways to sign in (`review_app.auth.choose_mode`): a users file of argon2 hashes (`--users`), a trusted
proxy's header (`--auth-header`), Streamlit's OIDC `st.login`, or open (any name). With a users file,
failed attempts are rate-limited per name and per address (`auth.SignInLimiter`, one per app process)
and the session keeps the hash it signed in with: every click compares it with the file as it is now,
so `python -m review_app users remove cat` or a new password ends cat's open tab at her next click.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import streamlit as st

from core.errors import UserError
from review_app.auth import SignInLimiter, UsersFile, choose_mode, header_identity

SESSION_KEYS = ("annotator", "signed_hash", "users_path", "skipped", "flash", "undo_confirm")


def _stamp(path: str) -> tuple[int, int, int]:
    """What changes when the users file is rewritten (`users add` replaces it: a new inode)."""
    try:
        st_ = Path(path).stat()
    except OSError:
        return (0, 0, 0)  # UsersFile.load says what is wrong, in one line
    return (st_.st_mtime_ns, st_.st_ino, st_.st_size)


@st.cache_resource(max_entries=8, show_spinner=False)
def _users(path: str, stamp: tuple[int, int, int]) -> UsersFile:  # stamp: a changed file is read again
    return UsersFile.load(path)


def users_file(path: str) -> UsersFile:
    return _users(path, _stamp(path))


@st.cache_resource(show_spinner=False)
def limiter(path: str) -> SignInLimiter:  # one per users file, shared by every session of this process
    return SignInLimiter()


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises rather than returning None
        return False


def legacy_password_set() -> bool:
    if os.environ.get("SEEDLOOP_REVIEW_PASSWORD"):
        return True
    try:
        return bool(st.secrets.get("review_password"))
    except Exception:
        return False


def end_sign_in(why: str) -> None:
    """Forget who is signed in; the sign-in form shows `why` once."""
    for key in SESSION_KEYS:
        st.session_state.pop(key, None)
    st.session_state.signed_out_why = why


def still_signed_in() -> bool:
    """True unless this session signed in with a users file that no longer holds its name with the
    same password hash; then the sign-in ends, with one line saying why."""
    if st.session_state.get("auth_mode") != "users":
        return "annotator" in st.session_state
    if "signed_hash" not in st.session_state or "annotator" not in st.session_state:
        return False  # never signed in with the users file in this session
    name = st.session_state.annotator
    try:
        hashed = users_file(st.session_state.users_path).hashes.get(name)
    except UserError as exc:  # a users file gone or broken: nobody's sign-in is backed by it
        end_sign_in(f"Signed out: {exc}")
        return False
    if hashed == st.session_state.signed_hash:
        return True
    end_sign_in(f"Signed out: {name} is no longer in the users file; ask your lead to add you again."
                if hashed is None else f"Signed out: the password of {name} was changed; sign in with the new one.")
    return False


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
    if "annotator" in st.session_state and still_signed_in():
        return st.session_state.annotator
    st.title("Review queue")
    if "signed_out_why" in st.session_state:
        st.warning(st.session_state.pop("signed_out_why"))
    users = users_file(args.users) if mode == "users" else None
    if users is None:
        st.caption("Open sign-in: names are not checked. For a team, start the app with a users file, a "
                   "sign-in proxy or OIDC (README, Review).")
    with st.form("login"):
        name = st.text_input("Your name (recorded with every decision)", key="login_name").strip()
        password = st.text_input("Password", type="password", key="login_password") if users else ""
        if st.form_submit_button("Start reviewing", type="primary"):
            if not name:
                st.error("Enter your name.")
            elif users is None:
                st.session_state.annotator = name
                st.rerun()
            else:
                _check_password(args.users, users, name, password)
    return None


def _check_password(path: str, users: UsersFile, name: str, password: str) -> None:
    """Sign `name` in when the password is theirs; refused without checking while rate-limited."""
    limits, address, now = limiter(path), st.context.ip_address, time.time()
    wait = limits.wait(name, address, now)
    if wait > 0:
        st.error(f"Too many failed sign-ins for this name or from this address: try again in "
                 f"{max(1, round(wait / 60))} min.")
    elif users.verify(name, password):
        limits.succeeded(name)
        st.session_state.update(annotator=name, signed_hash=users.hashes[name], users_path=path)
        st.rerun()
    else:
        limits.failed(name, address, now)
        st.error("Wrong name or password.")


def sign_out() -> None:
    if st.session_state.get("auth_mode") == "oidc":
        st.logout()
    for key in SESSION_KEYS:
        st.session_state.pop(key, None)
