"""Generation on a Ray cluster, the driver's side: connecting (`init`), the pools that send batches and
shards to the worker actors and take the results back in sample order, and their restarts.

    python generate.py --ray ...                  # a local cluster on this machine's cores
    python generate.py --ray auto ...             # the cluster `ray start --head` started here
    python generate.py --ray ray://head:10001 ... # a remote one

`samples.jsonl`, its provenance and resumption are those of a single-process run; with the openai
backend the spend cap is one cap for the whole cluster; `--ray --redis-url URL` runs the
near-duplicate check on the workers. A killed worker is restarted and its unfinished batches retried
(`MAX_RESTARTS`); one that keeps dying stops the run with `WorkerLost`. The API key never travels in
the job: each worker reads `OPENAI_API_KEY` from its own environment or `--openai-key-file`. The
actors themselves (what runs on the workers): backends/ray_workers.py. `ray` is an optional extra
(`pip install -e '.[ray]'`), imported only by these two modules.
Design: docs/generation.md#design-backendsray_poolpy
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from backends import Completion, Prompt, Sampling, row_seeds
from backends.ray_workers import GenerationWorker, ShardWorker, SpendKeeper
from core.errors import UserError, fail
from core.optional import require

_REPO = Path(__file__).resolve().parents[1]
_DRAIN_S = 120.0  # the longest a stop waits for queued openai calls to settle their spend
# A worker killed (the OOM killer, a lost node) comes back this many times, its unfinished calls
# retried on the new process; the next death stops the run (a worker that keeps dying is a fault to
# report, not to retry forever).
MAX_RESTARTS = 3
# Environment the workers get through the job's runtime_env. Never a secret: Ray stores the
# runtime_env with the job (and its logs print it); OPENAI_API_KEY is read on each node instead.
_FORWARDED = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "SEEDLOOP_CACHE", "OPENAI_BASE_URL")


class WorkerLost(UserError):
    """A Ray worker died more than `max_restarts` times, or could not start: the run stops (resumable)."""


def _ray() -> Any:
    return require("ray")


def init(address: str | None = None, *, num_cpus: int | None = None) -> Any:
    """Connect to `address` ('auto', 'ray://host:port', host:port) or start a local cluster (None/'local').

    Workers import this checkout: its root goes on their PYTHONPATH (a multi-node cluster needs the
    package installed, or the same path, on every node). Secrets are not forwarded: a worker reads
    OPENAI_API_KEY from its node's environment (a local cluster's processes inherit this one's).
    """
    ray = _ray()
    if ray.is_initialized():
        return ray
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(_REPO), os.environ.get("PYTHONPATH", "")) if p),
           "TOKENIZERS_PARALLELISM": "false"}
    for name in _FORWARDED:
        if name in os.environ:
            env[name] = os.environ[name]  # actors do not inherit the driver's environment on other nodes
    local = address in (None, "", "local")
    ray.init(address="local" if local else address, num_cpus=num_cpus if local else None,
             include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    return ray


def _cause(exc: BaseException) -> str:
    """One line of why a Ray actor died (Ray's own message spans many lines with advice)."""
    text = str(getattr(exc, "error_msg", "") or exc)
    if "Worker exit detail:" in text:
        text = text.split("Worker exit detail:", 1)[1]
    return text.strip().split(" Some common causes", 1)[0].splitlines()[0].strip().rstrip(".")


class _ShardMap:
    """`map_shards` over `self.actors` (the `validators.shared_index.ShardPool` protocol).

    `run_id` is the run these workers serve: the shared near-duplicate index keeps its keys under it.
    """

    _ray: Any
    actors: list[Any]
    max_restarts: int = MAX_RESTARTS
    run_id: str | None = None

    def _get(self, refs: Any) -> Any:
        """`ray.get`, with a worker whose restarts are spent turned into one `WorkerLost` line, and a
        `UserError` raised on a worker re-raised here as itself (one line, not Ray's traceback)."""
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, UserError):
                raise exc.cause from None
            raise
        except self._ray.exceptions.ActorDiedError as exc:
            which = next((f"worker {i + 1} of {len(self.actors)}" for i, a in enumerate(self.actors)
                          if a._actor_id.hex() == exc.actor_id), "a worker")
            raise WorkerLost(f"Ray {which} died and its restarts are spent (max_restarts={self.max_restarts}; "
                             f"last: {_cause(exc)})") from None

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        size = max(1, -(-n // len(self.actors)))
        return [(i, min(i + size, n)) for i in range(0, n, size)]

    def map_shards(self, fn: Callable[[list[Any]], list[Any]], items: list[Any]) -> list[Any]:
        """`fn` over contiguous shards of `items`, one per worker, all at once; the results joined in order."""
        refs = [actor.map_shard.remote(fn, items[a:b])
                for actor, (a, b) in zip(self.actors, self._chunks(len(items)), strict=False)]
        return [x for part in self._get(refs) for x in part]


class RayBackendPool(_ShardMap):
    """A Backend over `workers` Ray actors: whole batches go to the workers, results come back in order.

    `map_batches` is what `generator.runner` uses when it finds it; `generate` and `score` split one
    call into contiguous chunks (one per worker) and join them in order, so the validators'
    self-consistency check runs on the cluster too; `map_shards` runs the near-duplicate check's shards.

    Every actor restarts up to `max_restarts` times and its unfinished calls are retried on the new
    process with the same arguments (the same per-sample seeds, so the same samples); `restarts`
    counts the restarts seen. A worker that dies once more raises `WorkerLost` from the call that
    needed it. `key_file`: a path (on every node) the openai workers read their API key from.
    """

    def __init__(self, backend: str, options: dict[str, Any], workers: int, *, max_cost_usd: float | None = None,
                 max_restarts: int = MAX_RESTARTS, run_id: str | None = None, key_file: str | Path | None = None):
        ray = _ray()
        if workers < 1:
            fail(f"--ray-workers must be at least 1 (got {workers})")
        self._ray = ray
        self.max_restarts, self.run_id, self.restarts = max_restarts, run_id, 0
        # Calls are retried without limit while their worker restarts: the restarts bound the retries.
        retry = {"max_restarts": max_restarts, "max_task_retries": -1}
        self.keeper = None
        resources: dict[str, Any] = {"num_cpus": 1}
        if backend == "vllm":
            resources = {"num_cpus": 1, "num_gpus": 1}
        elif backend == "openai":
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            resources = {"num_cpus": 0.25}  # network-bound: several clients share a core
            here = ray.get_runtime_context().get_node_id()
            # A restarted keeper reads the ledger back: settled spend plus every open reservation at its
            # most (a call in flight when a worker died may have been billed), so the cap still holds.
            keeper_cls = ray.remote(num_cpus=0, **retry)(SpendKeeper)
            # The ledger file lives in the driver's run folder: pin its one writer to the driver's node.
            self.keeper = keeper_cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)) \
                .remote(str(Path(options["ledger"]).resolve()) if options.get("ledger") else None,
                        options.get("max_cost_usd"))
            options = {**options, "ledger": None}
            if os.environ.get("OPENAI_BASE_URL") and not options.get("base_url"):
                # The driver's server, as an argument (a URL, not a secret): a cluster started earlier
                # (`ray start`, or one this process already joined) never saw this process's environment.
                options = {**options, "base_url": os.environ["OPENAI_BASE_URL"]}
        # Paths the driver was given relative to its folder (a local model, the ledger) mean the same there.
        if options.get("model") and Path(options["model"]).exists():
            options = {**options, "model": str(Path(options["model"]).resolve())}
        worker_cls = ray.remote(**resources, **retry)(GenerationWorker)
        key = str(Path(key_file).resolve()) if key_file else None  # the path travels, never the key
        self.actors = [worker_cls.remote(backend, options, self.keeper, key) for _ in range(workers)]
        try:
            described = self._get([actor.describe.remote() for actor in self.actors])
        except WorkerLost:
            self.close()
            raise
        errors = [error for *_, error in described if error]
        if errors:
            self.close()
            raise WorkerLost(f"a Ray worker could not start: {errors[0]}")
        self.name, self.model_id = described[0][0], described[0][1]
        self.pids = [pid for _, _, pid, _ in described]
        self._submitted = 0

    def _seen(self, index: int, pid: int) -> None:
        """Note the process that answered worker `index`: a new one means Ray restarted it."""
        if pid != self.pids[index]:
            self.restarts += 1
            print(f"ray: worker {index + 1} of {len(self.actors)} restarted (pid {self.pids[index]} -> {pid}); "
                  "its unfinished batches were retried with the same seeds", file=sys.stderr)
            self.pids[index] = pid

    def map_batches(self, task: str, constrained: bool,
                    calls: Iterable[tuple[list[Prompt], Sampling, list[int]]]) -> Iterator[list[Completion]]:
        """The completions of each (prompts, sampling, seeds) call, in the order of `calls`.

        Calls go round-robin, at most two queued per worker (one running, one waiting in its mailbox)
        so no worker idles while the driver writes, and no more is generated ahead than that: a kill
        or a spend cap wastes at most two batches per worker. Once a batch meets the spend cap nothing
        more is sent; when the caller stops reading (it stops at the cap), the calls still queued are
        waited for, so every request they reserved is settled in the ledger before the workers go.
        """
        pending: deque[tuple[int, Any]] = deque()
        todo = iter(calls)

        def submit() -> None:
            call = next(todo, None)
            if call is not None:
                index = self._submitted % len(self.actors)
                self._submitted += 1
                pending.append((index, self.actors[index].generate_batch.remote(task, constrained, *call)))

        for _ in range(2 * len(self.actors)):
            submit()
        capped = False
        try:
            while pending:
                index, ref = pending.popleft()
                if not capped:
                    submit()
                pid, completions = self._get(ref)
                self._seen(index, pid)
                capped = capped or any(c.extra.get("spend_cap") for c in completions)
                yield completions
        finally:
            if pending and self.keeper is not None:
                self._ray.wait([ref for _, ref in pending], num_returns=len(pending), timeout=_DRAIN_S)

    def generate(self, prompts: list[Prompt], schema: Any, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        seeds = row_seeds(sampling, len(prompts), seeds)
        refs = [actor.generate.remote(prompts[a:b], schema, sampling, seeds[a:b])
                for actor, (a, b) in zip(self.actors, self._chunks(len(prompts)), strict=False)]
        return [c for part in self._get(refs) for c in part]

    def score(self, prompts: list[Prompt], choices: list[str], **frame: str) -> list[list[float]]:
        refs = [actor.score.remote(prompts[a:b], choices, **frame)
                for actor, (a, b) in zip(self.actors, self._chunks(len(prompts)), strict=False)]
        return [row for part in self._get(refs) for row in part]

    @property
    def total_spent_usd(self) -> float:
        if self.keeper is None:
            return 0.0
        return float(self._ray.get(self.keeper.total.remote()))

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        if self.keeper is not None:
            self._ray.kill(self.keeper)


def default_workers(ray: Any, backend: str) -> int:
    """One worker per GPU for vllm, per CPU otherwise (openai workers are light: also one per CPU)."""
    resources = ray.cluster_resources()
    count = int(resources.get("GPU" if backend == "vllm" else "CPU", 0))
    if count < 1:
        fail(f"the Ray cluster has no {'GPU' if backend == 'vllm' else 'CPU'} for a {backend} worker")
    return count


class ValidationPool(_ShardMap):
    """`workers` light Ray actors (one CPU each) for a validation with no generation pool left to reuse
    (a resumed run with nothing to generate): `map_shards` only."""

    def __init__(self, workers: int, *, max_restarts: int = MAX_RESTARTS, run_id: str | None = None):
        ray = _ray()
        if workers < 1:
            fail(f"--ray-workers must be at least 1 (got {workers})")
        self._ray = ray
        self.max_restarts, self.run_id = max_restarts, run_id
        worker_cls = ray.remote(num_cpus=1, max_restarts=max_restarts, max_task_retries=-1)(ShardWorker)
        self.actors = [worker_cls.remote() for _ in range(workers)]

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
