"""Benchmarks that measure ratios against a baseline run side by side in one process.

    python -m bench                 # all benchmarks but the slow growth ones (`make bench`)
    python -m bench growth prepare  # the growth curves (minutes each; or `python -m bench --all`)
    python -m bench minhash trainer # only bench_minhash*.py and bench_trainer*.py

Each `bench/bench_<name>.py` defines `run() -> list[BenchRow]`. A row's `note` names its baseline (what
a user would otherwise run); a missed target stays in the results as missed, the reason in the note. `ratio` always reads "how many
times better ours is" (higher is better), so a target is a minimum ratio.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from backends.models import REPO_ROOT
from core.records import Record
from core.tasks import load_task


@dataclass
class BenchRow:
    name: str
    ours: float
    baseline: float
    ratio: float
    target: float | None
    unit: str
    note: str = ""  # what the baseline is (what a user would otherwise run) and how it was measured
    command: str = ""  # the command that reproduces the row (`python -m bench <word>` when empty)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target

    def as_json(self) -> dict:
        row = asdict(self)
        row.pop("name")
        return row


def ratio(ours: float, baseline: float, higher_is_better: bool = True) -> float:
    """How many times better `ours` is than `baseline` (for times, pass higher_is_better=False)."""
    if higher_is_better:
        return ours / baseline if baseline else float("inf")
    return baseline / ours if ours else float("inf")


def fin_seeds(folder: Path) -> Path:
    """fin_sentiment's English sample rows as a seed file in `folder` (what generate.py takes)."""
    task = load_task("fin_sentiment")
    rows = [json.loads(line) for line in (REPO_ROOT / "data/samples/fin_sentiment/en.jsonl").read_text().splitlines()]
    path = folder / "seeds.jsonl"
    path.write_text("".join(Record.new(task=task.name, lang="en", text=r["text"],
                                       labels={"label": task.normalise_label(r["label"])}).model_dump_json() + "\n"
                            for r in rows), encoding="utf-8")
    return path
