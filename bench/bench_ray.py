"""`generate.py --ray` against the in-process run, side by side in one process, on the tiny model:

- samples/s with 2 Ray workers vs 1 (the scaling on this machine's cores);
- samples/s with 1 Ray worker vs the in-process run (Ray's overhead: actor start, a model load per
  worker, batches and results over the object store);
- the one-off local cluster start, reported.

Every run writes the same samples (same seed): only the wall time differs. Each time includes loading
the model (once in process, once per worker), as a user's run does. On a machine with C free cores and
a CPU backend, W <= C workers are expected to approach W times one worker's steady-state samples/s,
less the fixed start (an estimate from the per-batch independence of the work, not a measurement here).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import BenchRow, fin_seeds, ratio

N = 12
BATCH = 2


def _timed_run(seeds: Path, out: Path, **options) -> tuple[float, list[str]]:
    from generator.pipeline import generate

    start = time.perf_counter()
    result = generate(task="fin_sentiment", lang="en", n=N, seeds=seeds, out=out, model="tiny", seed=0,
                      batch_size=BATCH, validate=False, review=False, progress=False, **options)
    return time.perf_counter() - start, [r.id for r in result.records]


def run() -> list[BenchRow]:
    import ray

    from generator.distributed import init

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seeds = fin_seeds(folder)
        t_local, ids_local = _timed_run(seeds, folder / "local")
        start = time.perf_counter()
        init(None, num_cpus=2)
        t_start = time.perf_counter() - start
        try:
            t_one, ids_one = _timed_run(seeds, folder / "ray1", ray="local", ray_workers=1)
            t_two, ids_two = _timed_run(seeds, folder / "ray2", ray="local", ray_workers=2)
        finally:
            ray.shutdown()
    same = ids_local == ids_one == ids_two
    local_sps, one_sps, two_sps = N / t_local, N / t_one, N / t_two
    note = f"{N} samples, batches of {BATCH}, tiny model, 2-CPU local cluster; same samples: {same}"
    return [
        BenchRow("ray.two_vs_one_worker_samples_per_s", two_sps, one_sps, ratio(two_sps, one_sps), None,
                 "samples/s", note + "; more cores: ~W x one worker's steady rate, an estimate"),
        BenchRow("ray.one_worker_vs_in_process_samples_per_s", one_sps, local_sps, ratio(one_sps, local_sps), None,
                 "samples/s", note + "; below 1 = Ray's overhead (actor start, model load per worker, transfers)"),
        BenchRow("ray.local_cluster_start_s", t_start, t_start, 1.0, None, "s", "ray.init of a 2-CPU local cluster"),
    ]
