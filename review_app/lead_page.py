"""The lead's page: a split or disputed item's versions side by side, each with its votes, their
reasons and notes, what it changed from the original word by word, and a button to choose it.

    show_versions(store, item, "label")

What a tie-breaker, or the lead (an annotator with the `adjudicator` role), decides on. Titles are
"Original", "Edit by ana", "Reject", never hash ids; every value is data and is drawn as text. The
differences are shown wdiff-style (`[-12%-] {+15%+}`), so two versions that differ by one number show
that number; an edit is shown as its changes (the original is beside it in full). The phase line above says what the vote will be logged as (`review_app.review_page`).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from review_app.actions import on_choose
from review_app.evidence import long_text, word_diff
from review_app.store import Item, ReviewStore


def ballot_lines(ballots: list[dict[str, Any]]) -> list[str]:
    """One line per vote that gave a reason or a note: 'ana: reason: near-duplicate · note: 12 or 15?'."""
    lines = []
    for b in ballots:
        said = [f"reason: {b['reason']}"] if b["reason"] else []
        if b.get("note"):
            said.append(f"note: {b['note']}")
        if said:
            lines.append(f"{b['annotator']}: {' · '.join(said)}")
    return lines


def changes(original: dict[str, Any], version: dict[str, Any], name: str) -> list[str]:
    """What `version` changed from the original: its label, other outputs, the text word by word."""
    out = []
    for key, value in version["labels"].items():
        before = original["labels"].get(key, "")
        if value != before:
            out.append(f"{key}: {before} -> {value}" if key == name else f"{key}: {word_diff(before, value)}")
    if version["text"] != original["text"]:
        out.append(f"text: {word_diff(original['text'], version['text'])}")
    return out or ["no change from the original"]


def show_versions(store: ReviewStore, item: Item, name: str) -> None:
    """Each version in a column: title, voters, each vote's reason and note, the version itself (the
    original in full, an edit as its changes from it) and a choose button."""
    versions = store.versions(item.id)
    original = versions[0]
    st.caption("The versions and who voted for them, with their reasons and notes; changes from the original "
               "are marked [-removed-] {+added+}. Choose one (or reject, or make your own edit below).")
    for col, (i, v) in zip(st.columns(len(versions)), enumerate(versions), strict=True):
        with col, st.container(border=True):
            st.text(v["title"].capitalize())
            st.text(f"votes: {', '.join(v['votes']) or 'none'}")
            for line in ballot_lines(v["ballots"]):
                st.text(line)
            if v["version"] == original["version"]:
                st.caption(f"{name}: {v['labels'].get(name, '')}")
                long_text(v["text"], item.record.task, height=160)
                for key, value in v["labels"].items():
                    if key != name:
                        st.caption(key)
                        st.text(value)
            elif v["version"] != "reject":
                st.caption("changes from the original")
                for line in changes(original, v, name):
                    long_text(line, None, height=160)  # a diff of a long text scrolls like the text
            st.button("Choose reject" if v["version"] == "reject" else "Choose this version",
                      key=f"choose_{i}_{item.id}", on_click=on_choose, args=(store, item, v["version"]))
