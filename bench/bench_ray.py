"""`generate.py --ray` against the in-process run, side by side in one process, on the tiny model.

    python -m bench ray

Samples/s with 2 Ray workers vs 1 and with 1 worker vs in process, the local cluster start, and the
near-duplicate check on 2 workers through one Redis vs in process.
Rows: docs/benchmarks.md#design-benchbench_raypy
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from backends.ray_pool import ValidationPool, init
from bench import BenchRow, fin_seeds, ratio
from core.records import Record
from core.tasks import load_task
from loop.generate import generate
from validators.base import Context, build

N = 12
BATCH = 2


def _timed_run(seeds: Path, out: Path, **options) -> tuple[float, list[str]]:
    start = time.perf_counter()
    result = generate(task="fin_sentiment", lang="en", n=N, seeds=seeds, out=out, model="tiny", seed=0,
                      batch_size=BATCH, validate=False, review=False, progress=False, **options)
    return time.perf_counter() - start, [r.id for r in result.records]


@contextlib.contextmanager
def _redis_server(folder: Path) -> Iterator[str | None]:
    """A throwaway redis-server on a free loopback port (None without the binary)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _validation_rows(folder: Path) -> list[BenchRow]:
    """The near_duplicates check of 3,000 records (a tenth near copies) on 2 workers + Redis vs in process."""

    rng = random.Random(0)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(5000)]
    texts = [" ".join(rng.choices(vocab, k=20)) for _ in range(2700)]
    texts += [t + " today" for t in rng.sample(texts, 300)]
    records = [Record.new(task="fin_sentiment", lang="en", text=t) for t in texts]
    task = load_task("fin_sentiment")
    with _redis_server(folder) as url:
        if url is None:
            return []
        start = time.perf_counter()
        local = build("near_duplicates", task, {}, Context()).check(records)
        t_local = time.perf_counter() - start
        pool = ValidationPool(2)
        try:
            pool._ray.get([a.__ray_ready__.remote() for a in pool.actors])  # started, as a generation pool is
            start = time.perf_counter()
            shared = build("near_duplicates", task, {}, Context(redis_url=url, workers=pool)).check(records)
            t_shared = time.perf_counter() - start
        finally:
            pool.close()
    same = [v.model_dump() for v in shared] == [v.model_dump() for v in local]
    n = len(records)
    return [BenchRow("ray.near_duplicates_two_workers_redis_vs_in_process_records_per_s", n / t_shared, n / t_local,
                     ratio(n / t_shared, n / t_local), None, "records/s",
                     f"{n} records, {sum(not v.passed for v in local)} near duplicates; baseline: the in-process "
                     f"index; same verdicts: {same}; 2 workers on 2 busy cores + a few Redis round trips per "
                     "512 records, the workers' first imports included: above 1 only with free cores",
                     "python -m bench ray")]


def run() -> list[BenchRow]:
    import ray

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
            validation = _validation_rows(folder)
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
        *validation,
    ]
