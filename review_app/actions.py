"""What the review page's buttons do: each callback re-checks the sign-in, records the decision, and
leaves one line (`flash`) for the run that follows.

    st.button("Approve", on_click=act, args=(store, item, "approve"))

Streamlit runs a callback before it draws the page again, so a sign-in the users file no longer
backs (`signin.still_signed_in`) ends there and never reaches the store. A decision carries the
page's note box as the vote's `note`; a reject carries the reason chosen, or none (the box starts
empty: nothing is recorded that the annotator did not choose). Undo of a vote on an item that others
have since resolved with theirs asks first, naming them.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import UserError
from review_app.signin import still_signed_in
from review_app.store import Item, ReviewStore, Stale

REJECT_REASONS = ["wrong label", "off-topic or not the task", "unnatural or garbled", "near-duplicate",
                  "unsafe or personal data", "other"]
RESOLVED = ("approved", "edited", "rejected")


def flash(kind: str, message: str) -> None:
    """One line (`st.success`, `st.warning`, ...) shown at the top of the next run."""
    st.session_state.flash = (kind, message)


def _who() -> str | None:
    return st.session_state.annotator if still_signed_in() else None


def act(store: ReviewStore, item: Item, action: str, **kwargs: Any) -> None:
    # `view`: what this page showed; if the item has changed since, the store refuses the vote.
    annotator = _who()
    if annotator is None:
        return
    st.session_state.pop("undo_confirm", None)
    note = (st.session_state.get(f"note_{item.id}") or "").strip()
    try:
        store.decide(item.id, annotator, action, view=item.view, note=note, **kwargs)
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
    act(store, item, "reject", reason=st.session_state.get(f"reason_{item.id}") or "")


def on_choose(store: ReviewStore, item: Item, version: str) -> None:
    """A tie-breaker's or the lead's choice of one version (or of reject) from the side-by-side view."""
    if version == "reject":
        on_reject(store, item)
    else:
        act(store, item, "approve", version=version)


def on_edit(store: ReviewStore, item: Item, name: str) -> None:
    text = st.session_state.get(f"text_{item.id}", item.text)
    label = st.session_state.get(f"label_{item.id}", item.labels.get(name))
    outputs = {key: st.session_state.get(f"out_{key}_{item.id}", value)
               for key, value in item.labels.items() if key != name}
    act(store, item, "edit", text=text, label=label, labels=outputs, reason="edited")


def on_skip(store: ReviewStore, item: Item) -> None:
    annotator = _who()
    if annotator is None:
        return
    try:
        store.release(item.id, annotator)
    except UserError as exc:
        flash("error", str(exc))
        return
    st.session_state.skipped = [*st.session_state.get("skipped", []), item.id]
    flash("info", f"Item {item.id} skipped.")


def on_undo(store: ReviewStore) -> None:
    """Undo my last decision; when others' votes have since resolved its item, warn first (naming
    them) and undo only on a second press."""
    annotator = _who()
    if annotator is None:
        return
    try:
        last = store.last_vote(annotator)
        if last is None:
            flash("info", "Nothing to undo.")
            return
        others = ", ".join(last["others"])
        if last["status"] in RESOLVED and others and st.session_state.get("undo_confirm") != last["decision_id"]:
            st.session_state.undo_confirm = last["decision_id"]
            flash("warning", f"Item {last['item_id']} is already {last['status']}, resolved with the votes of "
                             f"{others}: undoing your vote reopens it. Press Undo (U) again to undo it anyway.")
            return
        st.session_state.pop("undo_confirm", None)
        item_id = store.undo_last(annotator)
    except UserError as exc:
        flash("error", str(exc))
        return
    if last["status"] in RESOLVED and others:
        flash("warning", f"Undid your last decision on item {item_id}: it was {last['status']} with {others}'s "
                         "votes, and is open again.")
    else:
        flash("info", f"Undid your last decision on item {item_id}.")
