"""Side by side with the tools a user would otherwise install: distilabel (generation) and
lm-evaluation-harness (scoring), same model folder, same prompts, same settings.

    python -m bench peers        # or `make bench-peers`; SLOW: plain `make bench` leaves it out

The peers' pins conflict with ours (outlines < 1, setuptools < 81, datasketch 1.7), so they live in
their own virtual environment, `.venv-peers` in the repository root, made once from
bench/peers-requirements.txt (torch==2.13.0 first) and reused while that file is unchanged. Each side
runs as a server process (bench/peers_side/peer.py in the peers' venv, bench/peers_ours.py in ours);
this driver sends both the same inputs, alternates them round by round (the order flips every
round), takes the best of ROUNDS, checks that the outputs agree and writes the rows. What each row
compares, the numbers, and why: docs/benchmarks.md#against-the-peers--python--m-bench-peers

Where things are: the venv and the two sides' server processes, bench/peers_harness.py; the
generation rows (distilabel), bench/peers_generation.py; the scoring rows (lm-evaluation-harness),
bench/peers_scoring.py. This module runs them in turn.

Settings (environment): SEEDLOOP_PEERS_ROUNDS (default 3), SEEDLOOP_PEERS_SCORING (scoring models,
default tiny-llama3; "tiny-llama3,tiny" adds the 4k-vocabulary one, "smollm2-135m" the real weights),
SEEDLOOP_PEERS_GENERATION (generation models, default tiny; "tiny,smollm2-135m" adds the real weights; empty:
none, and the same for scoring),
SEEDLOOP_PEERS_PIPELINE=0 (skip distilabel's as-shipped Pipeline run). Inputs, task YAMLs, per-item outputs and each side's log:
runs/bench-peers/.
"""

from __future__ import annotations

import sys
import time

from bench import BenchRow
from bench.peers_generation import GENERATION, generation_rows
from bench.peers_harness import load_avg, peers_python
from bench.peers_scoring import SCORING, scoring_rows

SLOW = True  # builds a 2 GB virtual environment on first use, then minutes of peer runs


def run() -> list[BenchRow]:
    import resource

    peers_python()  # the venv first, so its install time is not mistaken for a side's work
    rows: list[BenchRow] = []
    phases = ([(f"generation {m}", lambda m=m: generation_rows(m)) for m in GENERATION]
              + [(f"scoring {m}", lambda m=m: scoring_rows(m)) for m in SCORING])
    for name, phase in phases:
        start = time.perf_counter()
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        rows += phase()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
        print(f"   peers {name}: {time.perf_counter() - start:.0f} s wall, {used:.0f} s CPU in the two sides' "
              f"processes, load avg {load_avg()}", file=sys.stderr, flush=True)
    return rows
