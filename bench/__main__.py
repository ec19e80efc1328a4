"""Run the benchmarks: `python -m bench [WORD ...]`; prints a table and writes bench/results.json."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from bench import BenchRow
from core.errors import run_cli
from core.io import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results.json"


def discover(words: list[str], everything: bool = False) -> list[str]:
    """The benchmark modules named by `words`; with none, every one except those marked `SLOW = True`
    (growth curves: minutes each), unless `everything`."""
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    if words:
        return [n for n in names if any(n.removeprefix("bench_").startswith(w) for w in words)]
    return [n for n in names if everything or not getattr(importlib.import_module(f"bench.{n}"), "SLOW", False)]


def format_table(rows: list[BenchRow]) -> str:
    lines = [f"{'name':<44} {'ours':>12} {'baseline':>12} {'ratio':>8} {'target':>7}  unit"]
    for r in rows:
        target = "-" if r.target is None else f"{r.target:g}"
        mark = {True: "ok", False: "MISS", None: ""}[r.met]
        lines.append(f"{r.name:<44} {r.ours:>12.4g} {r.baseline:>12.4g} {r.ratio:>8.2f} {target:>7}  {r.unit} {mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("words", nargs="*",
                        help="only these benchmarks: bench_<word>*.py (e.g. 'minhash', 'trainer'); default all")
    parser.add_argument("--all", action="store_true",
                        help="also the slow growth benchmarks (growth, prepare), which run only when named")
    args = parser.parse_args(argv)
    rows: list[BenchRow] = []
    for name in discover(args.words, args.all):
        start = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        for row in importlib.import_module(f"bench.{name}").run():
            row.command = row.command or f"python -m bench {name.removeprefix('bench_')}"
            rows.append(row)
        print(f"   {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
    print(format_table(rows))
    previous = {}
    if RESULTS.exists():  # a partial run keeps the other benchmarks' rows (the growth rows among them)

        previous = json.loads(RESULTS.read_text())
    write_json_atomic(RESULTS, {**previous, **{r.name: r.as_json() for r in rows}})
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    run_cli(main)
