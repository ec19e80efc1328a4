"""How cost grows with work; each point runs in a child process of its own (peak RSS is its own).

    python -m bench growth          # slow: `make bench` skips it

Generation (100, 250, 500 samples) and near-duplicate removal (10k, 100k, 1M records); each row
compares the per-item cost at the largest size with the smallest (ratio 1.0 = linear). `curves()`
returns the points; `docs/img/growth.png` is drawn from them.
Rows: docs/benchmarks.md#design-benchbench_growthpy
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
from bench import BenchRow, fin_seeds, ratio
from bench.bench_minhash import corpus
from validators.minhash import Shingler, band_clusters, signatures

GEN_SIZES = (100, 250, 500)
SLOW = True  # minutes: `make bench` skips it; `python -m bench growth prepare` (or --all) runs it
DEDUP_SIZES = (10_000, 100_000, 1_000_000)
THRESHOLD = 0.7
PNG = REPO_ROOT / "docs" / "img" / "growth.png"
COMMAND = "python -m bench growth"
# A child that runs one script or function, then reports its own peak RSS (MB) on its last line.
_WRAP = """
import json, resource, runpy, sys
kind = sys.argv.pop(1)
try:
    if kind == "script" and sys.argv[1] == "-m":
        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    elif kind == "script":
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        import bench.bench_growth as g
        print(json.dumps(g.dedup_point(int(sys.argv[1]))))
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(*args: str) -> tuple[float, list[dict]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO_ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAP, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{args}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return elapsed, [row for row in map(_json_line, done.stdout.splitlines()) if row is not None]


def _json_line(line: str) -> dict | None:
    """A one-line JSON object, else None (the script's own output may hold multi-line JSON)."""
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def dedup_point(n: int) -> dict:
    """Near-duplicate removal of `n` synthetic records (run in a child by `curves`)."""

    texts = corpus(n)
    start = time.perf_counter()
    shingler = Shingler()
    sigs = signatures([shingler(t, "en") for t in texts])
    groups = band_clusters(sigs, THRESHOLD)
    return {"seconds": time.perf_counter() - start, "clusters": len(groups),
            "removed": sum(len(g) - 1 for g in groups)}


def _generation(tmp: Path) -> list[dict]:
    seeds, out, points, done = fin_seeds(tmp), tmp / "run", [], 0
    for n in GEN_SIZES:
        elapsed, lines = _child("script", "generate.py", "--task", "fin_sentiment", "--lang", "en", "--n", str(n),
                                "--seeds", str(seeds), "--out", str(out), "--model", "tiny", "--device", "cpu",
                                "--no-validate", "--no-review", "--quiet")
        points.append({"n": n, "seconds": elapsed, "samples_per_s": (n - done) / elapsed,
                       "peak_mb": lines[-1]["peak_mb"]})
        done = n
    return points


def curves() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        dedup = []
        for n in DEDUP_SIZES:
            _, lines = _child("dedup", str(n))
            dedup.append({"n": n, **lines[0], "peak_mb": lines[-1]["peak_mb"]})
        generation = _generation(Path(tmp))
    return {"dedup": dedup, "generation": generation}


def plot(points: dict, path: Path = PNG) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    d = points["dedup"]
    ax = axes[0]
    ax.loglog([p["n"] for p in d], [p["seconds"] for p in d], "o-", label="seconds")
    ax.loglog([p["n"] for p in d], [p["peak_mb"] for p in d], "s--", label="peak MB")
    ax.loglog([d[0]["n"], d[-1]["n"]], [d[0]["seconds"], d[0]["seconds"] * d[-1]["n"] / d[0]["n"]], ":",
              color="grey", label="linear")
    ax.set(title="near-duplicate removal", xlabel="records")
    ax.legend()
    g = points["generation"]
    ax = axes[1]
    ax.plot([p["n"] for p in g], [p["samples_per_s"] for p in g], "o-", label="samples/s (segment)")
    ax.set(title="generation, tiny model (CPU)", xlabel="samples", ylabel="samples/s")
    twin = ax.twinx()
    twin.plot([p["n"] for p in g], [p["peak_mb"] for p in g], "s--", color="tab:orange", label="peak MB")
    twin.set_ylabel("peak MB")
    ax.set_ylim(bottom=0)
    twin.set_ylim(bottom=0)
    ax.legend(loc="lower left")
    twin.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run() -> list[BenchRow]:
    points = curves()
    plot(points)
    d, g = points["dedup"], points["generation"]
    per_small, per_large = d[0]["seconds"] / d[0]["n"], d[-1]["seconds"] / d[-1]["n"]
    curve = "; ".join(f"{p['n']}: {p['seconds']:.1f} s, {p['peak_mb']:.0f} MB, {p['clusters']} clusters"
                      for p in d)
    rows = [
        BenchRow("growth.dedup_us_per_record_1M_vs_10k", per_large * 1e6, per_small * 1e6,
                 ratio(per_large, per_small, False), 0.5, "us/record",
                 f"baseline: the same path at 10k records (1.0 = linear); {curve}; {PNG.name}", COMMAND),
        BenchRow("growth.dedup_peak_mb_per_1M_vs_10k", d[-1]["peak_mb"], d[0]["peak_mb"],
                 ratio(d[-1]["peak_mb"], d[0]["peak_mb"], False), None, "MB",
                 "peak RSS of the child (interpreter and imports included)", COMMAND),
        BenchRow("growth.generation_samples_per_s_500_vs_100", g[-1]["samples_per_s"], g[0]["samples_per_s"],
                 ratio(g[-1]["samples_per_s"], g[0]["samples_per_s"]), 0.5, "samples/s",
                 "baseline: the first 100 samples (model load included); generate.py --model tiny, constrained, "
                 "--no-validate --no-review, each size extends the run; "
                 + "; ".join(f"{p['n']}: {p['samples_per_s']:.2f}/s, {p['peak_mb']:.0f} MB" for p in g), COMMAND),
    ]
    return rows


if __name__ == "__main__":
    print(json.dumps(dedup_point(int(sys.argv[1]))))
