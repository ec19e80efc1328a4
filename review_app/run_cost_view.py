"""The dashboard's "What this run cost" panel: `show_run_cost(find_manifest(db))`.

It reads the generation run's `manifest.json` next to the queue (generate.py writes `review.db` into its
run folder) the way `data_value_view` reads the data-value report: its usage table (calls, tokens,
seconds and dollars per stage and model, every session of the run added, `backends.metering`) and, for
`generate.py --accepted N`, how many of N passed and at what rate. It only reads that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from review_app.data_value_view import queue_folder, read_panel_json

MANIFEST = "manifest.json"


def find_manifest(db: str) -> Path | None:
    """The run's manifest beside a SQLite queue file; None for a database server or a queue without one."""
    folder = queue_folder(db)
    if folder is None or not (folder / MANIFEST).is_file():
        return None
    return folder / MANIFEST


def cost_text(row: dict[str, Any]) -> str:
    """Dollars as the run knows them: unknown (never $0) for an unpriced API model, $0 for a local one."""
    if row.get("cost_usd") is None:
        return "unknown"
    if set(row.get("cost_sources") or {}) <= {"local"}:
        return "$0 (local)"
    return f"${row['cost_usd']:.4f}"


def usage_rows(usage: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per stage, then the total."""
    rows = []
    for name, row in [*usage.get("stages", {}).items(), ("total", usage.get("total", {}))]:
        rows.append({"stage": name, "model": str(row.get("model") or "-"), "calls": row.get("calls", 0),
                     "failed": row.get("failures", 0), "tokens in": row.get("prompt_tokens", 0),
                     "tokens out": row.get("completion_tokens", 0), "texts embedded": row.get("texts", 0),
                     "seconds": round(float(row.get("seconds", 0.0)), 1), "cost": cost_text(row)})
    return rows


def show_run_cost(path: Path | None) -> None:
    """The panel; without a manifest, one line saying where it would come from."""
    st.subheader("What this run cost")
    if path is None:
        st.caption("No generation run beside this queue: generate.py writes manifest.json next to review.db, "
                   "with tokens, seconds and dollars per stage.")
        return
    manifest = read_panel_json(path, "run manifest")
    if manifest is None:
        return
    usage = manifest.get("usage")
    if not usage:
        st.caption(f"{path}: written before runs counted their usage per stage")
        return
    acceptance = manifest.get("acceptance")
    if acceptance:
        rate = acceptance.get("rate")
        st.text(f"accepted {acceptance.get('accepted', 0)} of {acceptance.get('target')}: "
                f"{acceptance.get('candidates', 0)} candidates in {len(acceptance.get('rounds', []))} rounds, "
                f"{acceptance.get('passed', 0)} passed the validators"
                + ("" if rate is None else f" (acceptance {100 * rate:.0f}%)"))
    prices = usage.get("prices", {})
    st.caption(f"From {path} (status {manifest.get('status')}); every session of the run added. Prices: "
               f"{prices.get('table', '')} as of {prices.get('as_of', '?')}, or what the API reported per request")
    st.dataframe(usage_rows(usage), hide_index=True)
    for name, row in usage.get("stages", {}).items():
        if row.get("cost_note"):
            st.text(f"{name}: {row['cost_note']}")
