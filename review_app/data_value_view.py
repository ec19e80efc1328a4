"""The dashboard's "Is this data worth training on?" panel: `show_data_value(find_report(db, explicit))`.

It reads the data-value report `generate.py --data-value EVAL` writes next to the queue
(`<out>/data_value/data_value.json`, shape in docs/evaluation.md "Data value") and shows its headline
numbers and figures. It only reads that file: the review app never computes the report itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

REPORT = Path("data_value") / "data_value.json"


def find_report(db: str, explicit: str | None = None) -> Path | None:
    """`explicit` (a data_value.json or its folder), else the report beside a SQLite queue file; None if absent."""
    if explicit:
        path = Path(explicit)
        return path / "data_value.json" if path.is_dir() else path
    folder = queue_folder(db)
    if folder is None:
        return None  # a database server: no folder to look in; pass --data-value
    path = folder / REPORT
    return path if path.is_file() else None


def queue_folder(db: str) -> Path | None:
    """The folder of a SQLite queue file (the run folder generate.py writes it into); None for a database server."""
    if "://" in db and not db.startswith("sqlite:///"):
        return None
    return Path(db.removeprefix("sqlite:///")).parent


def read_panel_json(path: Path, what: str) -> dict[str, Any] | None:
    """A panel's JSON file, or None after one warning line naming `what` it should have been."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        st.warning(f"{path}: not a readable {what} ({exc})")
        return None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def headline(lang: str, part: dict[str, Any]) -> dict[str, str]:
    """One row of the panel's table: the numbers a data engineer reads first, for one language."""
    fidelity, utility = part.get("fidelity", {}), part.get("utility", {})
    seed, dist = fidelity.get("nearest_seed") or {}, fidelity.get("distribution") or {}
    gain = (utility.get("comparisons") or {}).get("real_synthetic_vs_real") or {}
    agree = utility.get("label_agreement") or {}
    mauve = (dist.get("mauve") or {}).get("score")
    delta, p = gain.get("accuracy_delta"), gain.get("mcnemar_p")
    return {
        "language": lang, "synthetic": str(part.get("n", "")),
        "near-copies of seeds": f"{_pct(seed.get('near_copy_share'))} ({seed.get('near_copies', 0)})",
        "MAUVE": "n/a" if mauve is None else f"{mauve:.2f}",
        "precision / recall": "n/a" if not dist else f"{dist.get('precision', 0):.2f} / {dist.get('recall', 0):.2f}",
        "labels the real-data classifier agrees with": _pct(agree.get("agreement")),
        "real + synthetic vs real": "n/a" if delta is None else f"{100 * delta:+.1f} points (p = {p:.2g})",
    }


def show_data_value(path: Path | None) -> None:
    """The panel; a missing or unreadable report says how to make one, in one line."""
    st.subheader("Is this data worth training on?")
    if path is None or not path.is_file():
        st.caption("No data-value report for this queue: `python generate.py ... --data-value EVAL.jsonl` writes "
                   "one next to review.db (or pass `-- --data-value DIR` to the app).")
        return
    report = read_panel_json(path, "data-value report")
    if report is None:
        return
    st.caption(f"Accepted samples at generation time against the real data ({path}); every value is the "
               "report's own (report.md beside it has the full story)")
    st.text(report.get("verdict", ""))  # data-derived text: shown as text, never Markdown
    st.dataframe([headline(lang, part) for lang, part in report.get("by_lang", {}).items()], hide_index=True)
    for name in (report.get("figures") or {}).values():
        figure = path.parent / name
        if figure.is_file():
            st.image(str(figure), caption=name)
