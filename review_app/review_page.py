"""The review page: one item at a time, the decision at the top, the evidence below, progress aside.

    review_page(store, "ana")

Laid out for a laptop (1366 x 768): the phase line, the sample, the claimed label and the buttons
(A approve, S skip, 1..9 label, X reject) come first, so a text of up to 320 characters is decided
without scrolling; the reason and note boxes, the edit form and then the evidence (validators,
self-consistency, seeds: `review_app.evidence`) follow. A split or disputed item shows the lead's
view of its versions (`review_app.lead_page`) above the buttons. The sidebar holds the queue filters,
progress (what is left in the queue, my decisions today and the team's), undo and the queue filters.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from core.errors import UserError
from core.tasks import load_task
from review_app.actions import REJECT_REASONS, act, on_edit, on_label, on_reject, on_skip, on_undo
from review_app.evidence import long_text, show_evidence
from review_app.lead_page import show_versions
from review_app.resolve import ADJUDICATOR, ruling_phase
from review_app.store import Item, ReviewStore, label_field

ANY = "(any)"
DOUBT_LEGEND = ("doubt {d:.2f}: how unsure the validators are about this sample, from 0 (no doubt) to 1 (as "
                "doubtful as a rejection); the queue shows the most doubtful first")
# What the page says is what the log records (`decisions.phase`): an adjudicator on a split rules on it.
PHASE_LINE = {
    "independent": "independent review: you see the original only; decision {n} of {of}",
    "tiebreak": "split: your decision breaks the tie",
    "adjudication": "{what}: your ruling settles it (logged as adjudication)",
}
KEYS = "Keys: A approve · X reject · 1–9 label · Ctrl+Enter save the edited text · S skip · U undo"


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


def show_progress(store: ReviewStore, annotator: str) -> None:
    """Left in the queue, mine today, the team's today (since the server's midnight)."""
    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    p = store.progress(annotator, since=midnight)
    st.sidebar.subheader("Progress")
    done = p["total"] - p["open"]
    st.sidebar.progress(done / p["total"] if p["total"] else 1.0,
                        text=f"{done:,} of {p['total']:,} items resolved")
    st.sidebar.text(f"left in the queue: {p['open']:,} ({p['disputed']:,} disputed)")
    st.sidebar.text(f"mine today: {_n(p['mine'], 'decision')}")
    st.sidebar.text(f"team today: {_n(p['team'], 'decision')} by {_n(p['annotators'], 'person', 'people')}")


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else many or one + 's'}"


@st.cache_data(show_spinner=False)
def _task_labels(task: str) -> list[str]:
    try:
        return load_task(task).label_names
    except UserError:
        return []


def task_labels(store: ReviewStore, task: str) -> list[str]:
    return _task_labels(task) or store.filter_values()["label"]


def phase_line(item: Item, is_adjudicator: bool) -> str:
    phase = ruling_phase(item.phase, is_adjudicator)
    what = "disputed" if item.status == "disputed" else "split"
    return PHASE_LINE.get(phase, "{status}").format(n=item.decided + 1, of=item.base_needed, status=item.status,
                                                    what=what)


def show_sample(item: Item, name: str, line: str) -> None:
    """The phase line, the text exactly as written, the claimed label and any other outputs."""
    rec = item.record
    st.text(f"Item {item.id} · {rec.task} · {rec.lang} · {line}")
    st.caption(DOUBT_LEGEND.format(d=item.doubt))
    if item.phase in ("tiebreak", "adjudication"):
        st.warning(line[0].upper() + line[1:] + ".")
    with st.container(border=True):
        st.caption("Text (shown exactly as written)")
        long_text(item.text, rec.task)
        st.text(f"Claimed {name}: {item.labels.get(name, '')}")
        for key, value in item.labels.items():
            if key != name:
                st.caption(key)
                st.text(value)


def decision_buttons(store: ReviewStore, item: Item, labels: list[str], current: str) -> None:
    """Approve, Skip, one button per label (keys 1..9), Reject; then the reject reason and the note."""
    cols = st.columns(3 + min(len(labels), 9))
    cols[0].button("Approve", key=f"approve_{item.id}", shortcut="A", type="primary",
                   on_click=act, args=(store, item, "approve"),
                   help="a vote for the text and label shown above (the original)")
    cols[1].button("Skip", key=f"skip_{item.id}", shortcut="S", on_click=on_skip, args=(store, item))
    for i, label in enumerate(labels[:9]):
        cols[i + 2].button(f"{i + 1} · {label}", key=f"label_{i}_{item.id}", shortcut=str(i + 1),
                           on_click=on_label, args=(store, item, label, current))
    cols[-1].button("Reject", key=f"reject_{item.id}", shortcut="X", on_click=on_reject, args=(store, item),
                    help="records the reason chosen below, or none")
    r1, r2 = st.columns([2, 3])
    r1.selectbox("Reject reason (optional)", REJECT_REASONS, index=None, placeholder="no reason given",
                 key=f"reason_{item.id}")
    r2.text_input("Note (optional, kept with your vote)", key=f"note_{item.id}")
    st.caption(KEYS)


def edit_form(store: ReviewStore, item: Item, labels: list[str], name: str, current: str) -> None:
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


def review_page(store: ReviewStore, annotator: str) -> None:
    show_progress(store, annotator)
    st.sidebar.button("Undo my last decision", key="undo", shortcut="U", on_click=on_undo, args=(store,))
    chosen = filters(store)
    item = store.claim(annotator, exclude=st.session_state.get("skipped", []), **chosen)
    if item is None:
        if st.session_state.get("skipped"):
            st.info(f"Only items you skipped are left ({len(st.session_state.skipped)}).")
            st.button("Show skipped items again", key="unskip", on_click=st.session_state.pop, args=("skipped",))
        else:
            st.success("Nothing left to review with these filters. Thank you!")
        return
    name = label_field(item.record.task)
    current = item.labels.get(name, "")
    labels = task_labels(store, item.record.task)
    show_sample(item, name, phase_line(item, store.role(annotator) == ADJUDICATOR))
    if item.phase in ("tiebreak", "adjudication"):
        show_versions(store, item, name)
    decision_buttons(store, item, labels, current)
    edit_form(store, item, labels, name, current)
    st.divider()
    show_evidence(item)
