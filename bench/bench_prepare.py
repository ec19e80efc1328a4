"""`data prepare` on the full shared datasets (/work/shared/datasets): seconds per 10k input rows.

A cost figure, not a race: no other tool does the same cleaning (unicode repair, language filter,
Vietnamese restoration, exact and near-duplicate removal, conflicting labels, stratified selection),
so the row's baseline is its own figure (ratio 1.0) and it has no target. Skipped, with the reason
on stderr, when the datasets are absent (a fresh clone).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench import BenchRow
from bench.bench_growth import _child

DATASETS = Path("/work/shared/datasets")
SLOW = True  # minutes: `make bench` skips it; `python -m bench growth prepare` (or --all) runs it
COMMAND = "python -m bench prepare"


def run() -> list[BenchRow]:
    if not DATASETS.is_dir():
        print(f"   skipped: {DATASETS} absent", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, lines = _child("script", "-m", "data", "prepare", "--source-dir", str(DATASETS),
                                "--out", tmp)
        summary = json.loads((Path(tmp) / "data" / "prepare_summary.json").read_text(encoding="utf-8"))
    rows_in = sum(s["rows"] for s in summary["sources"].values())
    per_10k = elapsed / rows_in * 10_000
    sources = ", ".join(f"{k} {v['rows']}" for k, v in summary["sources"].items())
    return [BenchRow("prepare.seconds_per_10k_rows_shared_datasets", per_10k, per_10k, 1.0, None, "s/10k rows",
                     f"no baseline (a cost figure); {rows_in} rows in ({sources}) -> {summary['train']} train + "
                     f"{summary['eval']} eval in {elapsed:.0f} s wall (process start and imports included), "
                     f"peak {lines[-1]['peak_mb']:.0f} MB", COMMAND)]
