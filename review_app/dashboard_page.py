"""The dashboard page: the queue's totals, throughput, acceptance by generation setting, agreement.

    dashboard_page(store, find_report(db, explicit), find_manifest(db))

Numbers from `review_app.metrics.summary` (what `python -m review_app stats` prints). Agreement is
over independent votes only and comes twice: on the label (what a classifier learns) and on the
decision (the exact version voted for, what resolves an item); beside them, how many items needed a
third vote, so a high label agreement cannot hide the items that went to a tie-break or the lead.
The LLM judge's agreement with people, per rubric score (`review_app.calibration`), follows it. The
data-value panel is `review_app.data_value_view`; what the run cost per stage, `review_app.run_cost_view`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from review_app.calibration import stats
from review_app.data_value_view import show_data_value
from review_app.run_cost_view import show_run_cost
from review_app.store import ReviewStore

STATUSES = ("pending", "disputed", "approved", "edited", "rejected")


def _value(x: Any) -> Any:
    return "n/a" if x is None else x


def agreement_panel(s: dict[str, Any]) -> None:
    ia, mh, third = s["inter_annotator"], s["model_vs_human"], s["third_vote"]
    st.subheader("Agreement")
    st.caption("Between annotators: independent votes only (cast before anyone else's vote could be seen); "
               "tie-breaks and the lead's rulings are left out")
    a, b, c, d = st.columns(4)
    a.metric("Raw agreement on the label", _value(ia["raw_agreement"]),
             help="share of agreeing pairs of independent votes on the same item, comparing reject or the label "
                  "voted for (an approval and an edit that keeps the label agree)")
    b.metric("Raw agreement on the decision", _value(ia["decision"]["raw_agreement"]),
             help="the same pairs, comparing reject or the exact version voted for (text and labels): what "
                  "resolves an item, so a disagreement here sends it to a third vote")
    c.metric("Items that needed a third vote", f"{third['items']} of {third['of']}",
             help="items asking for two or more votes whose independent votes split: settled by a tie-break or "
                  "the lead, or waiting for one")
    d.metric("Inter-annotator alpha (label)", _value(ia["alpha"]),
             help=f"Krippendorff's alpha (nominal) over {ia['items']} items decided by {ia['raters']} people; "
                  f"on the decision: {_value(ia['decision']['alpha'])}")
    e, f, _, _ = st.columns(4)
    e.metric("Model vs human agreement", _value(mh["agreement"]),
             help=f"self-consistency majority vs the reviewer's label over {mh['items']} items")
    f.metric("Generator label kept", _value(mh["claimed_label_kept"]))
    if ia["pairs"]:
        st.caption("Cohen's kappa per pair of annotators who decided the same items (on the label)")
        st.dataframe(ia["pairs"], hide_index=True)


def judge_panel(rows: list[dict[str, Any]]) -> None:
    """Per task the judge scored: its keep vs the people's, per rubric score, at every threshold."""
    if not rows:
        return
    st.subheader("LLM judge vs people")
    st.caption("A person keeps a sample when they approve it, or edit it and keep its label. The judge keeps it when "
               "a score is at or above the threshold. Independent votes only; kappa is Cohen's (0 = chance).")
    for t in rows:
        v = t["verdict"]
        st.text(f"{t['task']}: {t['decisions']} votes on {t['items']} items by {t['annotators']} people "
                f"(judge {', '.join(t['judge_models'])}); people keep {t['people_keep']}, the judge's verdict "
                f"agrees {_value(v['accuracy'])} (kappa {_value(v['kappa'])})")
        if t.get("note"):
            st.caption(t["note"])
        st.dataframe([{"score": name, "best threshold": _value((s["best"] or {}).get("threshold")),
                       "kappa": _value((s["best"] or {}).get("kappa")),
                       "accuracy": _value((s["best"] or {}).get("accuracy")), "votes": s["decisions"]}
                      for name, s in t["scores"].items()], hide_index=True)
        with st.expander("Every threshold"):
            st.dataframe([{"score": name, **row} for name, s in t["scores"].items() for row in s["thresholds"]],
                         hide_index=True)


def dashboard_page(store: ReviewStore, report: Path | None = None, manifest: Path | None = None) -> None:
    s = stats(store)
    st.title("Dashboard")
    cols = st.columns(1 + len(STATUSES))
    cols[0].metric("total", s["total"])
    for col, status in zip(cols[1:], STATUSES, strict=True):
        col.metric(status, s["status"].get(status, 0))
    left, right = st.columns(2)
    left.caption("Items by claimed label")
    left.bar_chart(s["label"], horizontal=True)
    right.caption("Items by language")
    right.bar_chart(s["lang"], horizontal=True)
    agreement_panel(s)
    judge_panel(s["judge_vs_human"])
    st.subheader("Throughput per annotator")
    st.dataframe(s["throughput"], hide_index=True)
    st.subheader("Acceptance by prompt template and sampling strategy")
    st.caption("Over resolved items: approved (the original survived unchanged), edited, rejected")
    st.dataframe(s["acceptance_by_template"], hide_index=True)
    st.dataframe(s["acceptance_by_strategy"], hide_index=True)
    if s["reject_reasons"]:
        st.caption("Reasons given with reject votes that count")
        st.dataframe(s["reject_reasons"], hide_index=True)
    show_data_value(report)
    show_run_cost(manifest)
