"""The evidence under a sample, and how data-derived text is drawn: always as text, never Markdown.

    long_text(text, task)          # literal; a long one in a scroll box, a warning over the task's limit
    word_diff(old, new)            # 'rose [-12%-] {+15%+} in Q3': what an edit changed, word by word
    consistency_line(details)      # the self-consistency votes in words, saying what its number is
    judge_rows(details)            # the LLM judge's scores: value, its meaning, threshold, met or not
    show_evidence(item)            # validators (verdict, score, what it measures), votes, the judge, seeds

The evidence sits below the decision on the review page: an annotator reads the sample, the claimed
label and the keys first; the tables and the seed examples are there for when the sample is in doubt,
the long parts collapsed.
"""

from __future__ import annotations

from collections import Counter
from difflib import SequenceMatcher
from typing import Any

import streamlit as st

from core.errors import UserError
from core.tasks import load_task
from review_app.store import Item

SCROLL_CHARS = 600  # longer texts go in a scroll box of fixed height, so the buttons stay in view
# What each validator's raw score measures, and which way is good (the verdict column is the one direction).
SCORE_MEANING = {
    "schema": "1 = the sample parses and fits the task's schema",
    "language": "probability the text is in the record's language (higher is better)",
    "quality": "share of repeated n-grams (lower is better)",
    "near_duplicates": "similarity to the nearest other sample (lower is better)",
    "dedup": "similarity to the nearest other sample (lower is better)",
    "self_consistency": "share of re-labellings that agree with the claimed label (higher is better)",
    "neighbour_agreement": "share of the nearest seed examples with the claimed label (higher is better)",
    "judge": "the LLM judge's rubric scores on one scale: 0 = every score at its worst, 1 = at its best",
}


@st.cache_data(show_spinner=False)
def _input_limit(task: str) -> int | None:
    try:
        return load_task(task).input_max_chars
    except UserError:
        return None


def long_text(text: str, task: str | None, *, height: int = 260) -> None:
    """`text` literally; a long one in a scroll box of fixed height, with a warning above the task's limit
    (`task` None: no limit to warn about, e.g. for a diff)."""
    limit = _input_limit(task) if task else None
    if limit is not None and len(text) > limit:
        st.warning(f"This text is {len(text):,} characters; the task allows {limit:,}. Shown in a scroll box; "
                   "reject it or shorten it in the edit box.")
    if len(text) > SCROLL_CHARS or (limit is not None and len(text) > limit):
        with st.container(height=height, border=False):
            st.text(text)
    else:
        st.text(text)


def word_diff(old: str, new: str) -> str:
    """`new` against `old` word by word, as wdiff writes it: `[-removed-]` and `{+added+}`, unchanged
    words as they are (runs of spaces and line breaks read as one space)."""
    a, b = old.split(), new.split()
    out: list[str] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(a[i1:i2])
            continue
        if i2 > i1:
            out.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(out)


def _number(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "n/a"


def consistency_line(details: dict[str, Any]) -> str:
    """The self-consistency votes in words: 'majority positive (2 of 3 votes) · agreement with the
    claimed label (neutral): 0.33'. A majority only when one label has more votes than any other; the
    agreement number is named for what it is, the share of votes for the claimed label (which is not
    the majority's share when the model disagrees with the claim)."""
    votes = Counter(details.get("votes") or {})
    total = sum(votes.values())
    counts = votes.most_common()
    claimed = details.get("claimed")
    agreement = (f"agreement with the claimed label{f' ({claimed})' if claimed else ''}: "
                 f"{_number(details.get('agreement'))}")
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return f"no majority: votes split {'/'.join(str(n) for _, n in counts)} · {agreement}"
    if not counts:
        return f"no votes · {agreement}"
    majority, n = counts[0]
    return f"majority {majority} ({n} of {total} votes) · {agreement}"


def validators_table(item: Item) -> None:
    rec = item.record
    st.caption("Validators: verdict first (pass or flag), the raw score beside it and what it measures")
    if not rec.verdicts:
        st.text("no verdicts")
        return
    # A judge in `mode: flag` passes what it would reject: the column shows its opinion.
    st.dataframe([{"validator": v.name,
                   "verdict": "pass" if v.passed and v.details.get("keep") is not False else "flag",
                   "score": None if v.score is None else round(v.score, 3),
                   "score measures": SCORE_MEANING.get(v.name, "as the validator reports it"),
                   "reason": v.reason} for v in rec.verdicts], hide_index=True,
                 column_config={"validator": st.column_config.TextColumn(width=140),
                                "verdict": st.column_config.TextColumn(width=70),
                                "score": st.column_config.NumberColumn(width=70),
                                "score measures": st.column_config.TextColumn(width=480),
                                "reason": st.column_config.TextColumn(
                                    width="large", help="full text below, under 'Reasons in full'")})
    reasons = [v for v in rec.verdicts if v.reason]
    if reasons:
        with st.expander(f"Reasons in full ({len(reasons)})"):
            for v in reasons:
                st.text(f"{v.name} ({'pass' if v.passed else 'flag'}): {v.reason}")


def judge_rows(details: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per rubric score: its value, what that value means, the threshold and whether it is met."""
    scores, meanings = details.get("scores") or {}, details.get("meanings") or {}
    thresholds = details.get("thresholds") or {}
    return [{"score": name, "value": value, "means": meanings.get(name, ""),
             "threshold": thresholds.get(name), "met": "yes" if value >= thresholds.get(name, value) else "no"}
            for name, value in scores.items()]


def judge_section(rec: Any) -> None:
    """The LLM judge's scores and its reasoning, as text."""
    verdict = rec.verdict("judge")
    if verdict is None:
        return
    d = verdict.details
    if not d.get("parsed", True):
        st.caption(f"LLM judge ({d.get('model') or 'model'}): no verdict")
        st.text(verdict.reason)
        return
    keeps = "keeps it" if d.get("keep") else "would reject it" if verdict.passed else "rejects it"
    st.caption(f"LLM judge ({d.get('model') or 'model'}) {keeps}: every score against its threshold, "
               f"keep rule '{d.get('keep_rule', 'all')}'")
    st.dataframe(judge_rows(d), hide_index=True,
                 column_config={"means": st.column_config.TextColumn(width="large")})
    st.text(f"Reasoning: {d.get('reasoning') or '(none)'}")


def show_evidence(item: Item) -> None:
    """Validators, the model's self-consistency votes, the judge's scores and the seed examples, below the
    decision."""
    rec = item.record
    validators_table(item)
    judge_section(rec)
    sc = rec.verdict("self_consistency")
    votes = (sc.details.get("votes") or {}) if sc else {}
    st.caption("Self-consistency votes (the model re-labelling its own sample)")
    if votes:
        left, right = st.columns([1, 2], vertical_alignment="center")
        left.dataframe([{"label": k, "votes": n} for k, n in votes.items()], hide_index=True)
        with right:
            st.text(consistency_line({"claimed": item.label, **sc.details}))
    else:
        st.text("no votes")
    seeds = rec.provenance.get("seed_texts") or []
    ids = rec.provenance.get("seed_ids") or []
    if seeds or ids:
        with st.expander(f"Seed examples ({len(seeds) or len(ids)})"):
            for i, seed in enumerate(seeds or ids):
                st.text(f"{ids[i] if i < len(ids) else i + 1}: {seed}" if seeds else str(seed))
