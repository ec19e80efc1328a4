"""run.py's time plan at 10x the rows, with a slowed stand-in for the model (`python -m bench oneshot_timeplan`).

300 training / 500 val tickets (variants of the Northstar samples), the default command, and the tiny
model slowed `SLOWDOWN` times (`SEEDLOOP_TINY_SLOWDOWN`: each forward pass takes that much longer, a
test and bench device), under `--time-budget-s BUDGET_S`. The row is the whole run's wall clock
(process start to exit) against its budget: the ratio budget / wall is at least 1 when the plan held.
The note says what the plan cut: the cross-fit's answered sample, early stops, dropped model parts.
Minutes of CPU: SLOW, run only when named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backends.models import REPO_ROOT
from bench import BenchRow, ratio

SLOW = True
SLOWDOWN = 3
BUDGET_S = 600
NORTHSTAR = REPO_ROOT / "data" / "samples" / "northstar"


def scaled_rows(folder: Path) -> tuple[Path, Path]:
    """300 train and 500 val rows: each Northstar ticket in numbered variants."""
    def rows(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    train = [dict(r, id=f"{r['id']}_{k}", ticket=f"{r['ticket']} (case {k})") for k in range(10)
             for r in rows(NORTHSTAR / "train.jsonl")]
    val = [dict(r, id=f"{r['id']}_{k}", ticket=f"{r['ticket']} (ref {k})") for k in range(50)
           for r in rows(NORTHSTAR / "val.jsonl")]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    return folder / "train.jsonl", folder / "val.jsonl"


def run() -> list[BenchRow]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train, val = scaled_rows(folder)
        env = {**os.environ, "SEEDLOOP_TINY_SLOWDOWN": str(SLOWDOWN), "HF_HUB_OFFLINE": "1"}
        for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            env.pop(key, None)
        began = time.monotonic()
        proc = subprocess.run([sys.executable, "run.py", "--train", str(train), "--val", str(val), "--weights",
                               str(folder / "w"), "--output", str(folder / "r.json"), "--base-model", "tiny",
                               "--time-budget-s", str(BUDGET_S)], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True)
        wall = time.monotonic() - began
        if proc.returncode != 0:
            raise RuntimeError(f"run.py failed: {proc.stderr[-1000:]}")
        training = json.loads((folder / "r.json").read_text())["training"]
    cross_fit = training["decision"].get("cross_fit", {})
    prediction = training["prediction"]
    answered = cross_fit.get("skipped") or (f"{cross_fit.get('rows')} held rows, {cross_fit.get('scored_rows')} "
                                            f"scored, {cross_fit.get('generated_rows')} with a generated reply")
    note = (f"300 train / 500 val, tiny slowed x{SLOWDOWN}, default command; baseline = the budget. "
            f"Cross-fit: {answered}; training steps {training['steps']} (stopped early: "
            f"{training.get('stopped_early')}); prediction: {prediction['model_scored_rows']} rows scored by the "
            f"model, {prediction['generated_rows']} generated; run's own clock {training['total_wall_clock_s']} s")
    return [BenchRow("run.py 10x rows, slowed stand-in: inside budget", round(wall, 1), BUDGET_S,
                     round(ratio(wall, BUDGET_S, higher_is_better=False), 3), 1.0, "s", note)]
