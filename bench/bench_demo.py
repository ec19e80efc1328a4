"""The demo's stages on real weights: seconds per stage, and the per-unit rate that sets each.

    python -m bench demo                      # SLOW (about 10 minutes): `python -m bench --all` runs it too
    SEEDLOOP_BENCH_DEMO_ARGS="--train-per-lang 100 --eval-per-lang 50" python -m bench demo
    SEEDLOOP_BENCH_DEMO_SUMMARY=runs/demo/summary.json python -m bench demo   # rows of a finished `make demo`

Runs `python demo.py --model smollm2-135m` once in a child process, as a user runs it (torch's default
threads), on the shared datasets when they are here (else data/samples), at small sizes (`DEMO_ARGS`)
so that it finishes in minutes, then reads `<out>/summary.json`: each stage's seconds and what it
processed (generated samples, training tokens, evaluated items). One row per stage: seconds, with the
rate per unit in the note, so that a 20-minute budget is sizes x rates (docs/benchmarks.md#real-weights).
With `SEEDLOOP_BENCH_DEMO_SUMMARY` it runs nothing: it reads that finished demo's summary.json (a whole
`make demo` at its own sizes), and the whole run's time is the summary's `seconds_this_run` (at least
the stages' sum, where stages were reused).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backends.models import REPO_ROOT, SMOLLM2
from bench import BenchRow

SLOW = True
ARGS_ENV = "SEEDLOOP_BENCH_DEMO_ARGS"
SUMMARY_ENV = "SEEDLOOP_BENCH_DEMO_SUMMARY"
DEMO_ARGS = "--train-per-lang 40 --eval-per-lang 25 --n-synthetic 16 --epochs 1"
BUDGET_S = 20 * 60


def _units(name: str, summary: dict) -> tuple[float, str]:
    """(how many units stage `name` processed, their name) from the demo's summary."""
    train, ablation = summary.get("train") or {}, summary.get("ablation") or {}
    if name == "generate":
        return summary["synthetic"]["generated"], "generated samples (validated and queued)"
    if name in ("train", "ablation_train", "ablation_seed_train"):
        run = {"train": train, "ablation_train": ablation.get("real_only", {}).get("train", {}),
               "ablation_seed_train": ablation.get("seed_control", {}).get("train", {})}[name]
        return run.get("tokens_per_s", 0) * run.get("wall_clock_s", 0), (
            f"training tokens ({run.get('records')} records, {run.get('steps')} steps)")
    if name == "evaluate":
        return 2 * summary["eval"]["n"], "scored items (base + tuned; the cheap baseline beside)"
    if name in ("ablation_evaluate", "ablation_seed_evaluate"):
        return summary["eval"]["n"], "scored items (tuned only; the cheap baseline beside)"
    if name == "data":
        return _count(summary["data"]["train"]) + _count(summary["data"]["eval"]), "rows written (train + eval)"
    return 0, ""


def _count(rows: int | dict) -> int:
    """Rows written: a count, or counts per language."""
    return sum(rows.values()) if isinstance(rows, dict) else int(rows)


def run() -> list[BenchRow]:
    given = os.environ.get(SUMMARY_ENV)
    if given:
        summary = json.loads(Path(given).read_text())
        where = (f"the finished demo in {Path(given).parent} (`python demo.py --model {summary['model']}`, its "
                 f"own sizes: {_sizes(summary)}), read from its summary.json; {os.cpu_count()} cores")
        # a re-run that reused stages took less than their sum: the whole run is at least the stages' sum
        wall = max(summary["seconds_this_run"], sum(t["seconds"] for t in summary["stages"].values()))
        return rows(summary, wall, where)
    args = shlex.split(os.environ.get(ARGS_ENV, DEMO_ARGS))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO_ROOT)}
        start, load = time.perf_counter(), os.getloadavg()[0]
        subprocess.run([sys.executable, "demo.py", "--model", SMOLLM2, "--out", str(out), "--fresh", *args],
                       cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
    where = (f"`python demo.py --model {SMOLLM2} {' '.join(args)}` in a child process, torch's default threads "
             f"({os.cpu_count()} cores), load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    return rows(summary, wall, where)


def _sizes(summary: dict) -> str:
    data = summary.get("data") or {}
    train, evaluated = _count(data.get("train", 0)), _count(data.get("eval", 0))
    return (f"{train} train + {evaluated} eval rows, {(summary.get('synthetic') or {}).get('generated', '?')} "
            f"synthetic generated, ablation {'on' if summary.get('ablation') else 'off'}")


def rows(summary: dict, wall: float, where: str) -> list[BenchRow]:
    """One row per stage of a demo's `summary` (seconds against the whole run's `wall`), then the whole run
    against the 20-minute budget."""
    model = summary.get("model", SMOLLM2)
    out = []
    for name, timing in summary["stages"].items():
        seconds = timing["seconds"]
        units, what = _units(name, summary)
        rate = f"; {units:.0f} {what}: {seconds / units:.3g} s each" if units else ""
        reused = " (reused from an earlier run)" if timing.get("reused") else ""
        out.append(BenchRow(f"demo.stage_seconds.{name}.{model}", seconds, wall, seconds / wall, None, "s",
                            f"share of the whole run's {wall:.0f} s (baseline){reused}{rate}; {where}"))
    out.append(BenchRow(f"demo.whole_run_vs_20_min_budget.{model}", wall, BUDGET_S, BUDGET_S / wall, None, "s",
                        f"process wall time (imports and model loads included); {where}"))
    return out
