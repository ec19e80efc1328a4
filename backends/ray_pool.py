"""Generation on a Ray cluster: one backend per worker actor, batches sharded, results in sample order.

    python generate.py --ray ...                  # a local cluster on this machine's cores
    python generate.py --ray auto ...             # the cluster `ray start --head` started here
    python generate.py --ray ray://head:10001 ... # a remote one

`samples.jsonl`, its provenance and resumption are those of a single-process run; with the openai
backend the spend cap is one cap for the whole cluster; `--ray --redis-url URL` runs the
near-duplicate check on the workers. `ray` is an optional extra (`pip install -e '.[ray]'`), imported
only here. Design: docs/generation.md#design-backendsray_poolpy
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from backends import Completion, Prompt, Sampling, get_backend, row_seeds
from backends.openai_backend import OpenAIBackend, SpendLedger
from backends.pricing import cost_usd
from core.errors import fail
from core.optional import require
from core.tasks import load_task

_REPO = Path(__file__).resolve().parents[1]
_DRAIN_S = 120.0  # the longest a stop waits for queued openai calls to settle their spend


def _ray() -> Any:
    return require("ray")


def init(address: str | None = None, *, num_cpus: int | None = None) -> Any:
    """Connect to `address` ('auto', 'ray://host:port', host:port) or start a local cluster (None/'local').

    Workers import this checkout: its root goes on their PYTHONPATH (a multi-node cluster needs the
    package installed, or the same path, on every node).
    """
    ray = _ray()
    if ray.is_initialized():
        return ray
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(_REPO), os.environ.get("PYTHONPATH", "")) if p),
           "TOKENIZERS_PARALLELISM": "false"}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "SEEDLOOP_CACHE", "OPENAI_BASE_URL",
                 "OPENAI_API_KEY"):
        if name in os.environ:
            env[name] = os.environ[name]  # actors do not inherit the driver's environment on other nodes
    local = address in (None, "", "local")
    ray.init(address="local" if local else address, num_cpus=num_cpus if local else None,
             include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    return ray


class SpendKeeper:
    """The one spend ledger of a distributed openai run (a Ray actor: its calls run one at a time)."""

    def __init__(self, ledger: str | None, max_cost_usd: float | None):
        self.ledger = SpendLedger(ledger) if ledger else None
        self.max_cost_usd = max_cost_usd
        self.spent = self.ledger.spent_before if self.ledger else 0.0  # settled + reserved, earlier runs included
        self._count = 0

    def reserve(self, most: float) -> str | None:
        """A request id when `most` still fits under the cap (recorded before the request), else None."""
        if self.max_cost_usd is not None and self.spent + most > self.max_cost_usd + 1e-12:
            return None
        self._count += 1
        request_id = f"r{os.getpid()}-{self._count}"
        self.spent += most
        if self.ledger:
            self.ledger.reserve(request_id, most)
        return request_id

    def settle(self, request_id: str, most: float, actual: float) -> None:
        self.spent += actual - most
        if self.ledger:
            self.ledger.settle(request_id, actual)

    def total(self) -> float:
        return self.spent


def _shared_cap_backend(keeper: Any, **options: Any) -> Any:
    """An `OpenAIBackend` whose reservations and settlements go through the cluster's `SpendKeeper`."""
    ray = require("ray")

    class SharedCapOpenAIBackend(OpenAIBackend):
        def _reserve(self, most: float) -> str | None:
            return ray.get(keeper.reserve.remote(most))

        def _settle(self, request_id: str, most: float, usage: Any = None, billed: bool = True) -> tuple[int, int]:
            prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion = int(getattr(usage, "completion_tokens", 0) or 0)
            if usage is not None:
                actual = cost_usd(self.model_id, prompt, completion, self.price_per_1k)
            else:  # refused (not billed) or lost in transport (may be billed: the most counts)
                actual = most if billed else 0.0
            ray.get(keeper.settle.remote(request_id, most, actual))
            with self._lock:
                self.cost_usd += actual
                self.prompt_tokens += prompt
                self.completion_tokens += completion
                self.requests += 1
            return prompt, completion

        @property
        def total_spent_usd(self) -> float:
            return float(ray.get(keeper.total.remote()))

    return SharedCapOpenAIBackend(**options)


class ShardWorker:
    """A Ray actor that runs a (picklable) function over one shard: the validators' split work."""

    def map_shard(self, fn: Callable[[list[Any]], list[Any]], shard: list[Any]) -> list[Any]:
        return fn(shard)


class _ShardMap:
    """`map_shards` over `self.actors` (the `validators.shared_index.ShardPool` protocol)."""

    _ray: Any
    actors: list[Any]

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        size = max(1, -(-n // len(self.actors)))
        return [(i, min(i + size, n)) for i in range(0, n, size)]

    def map_shards(self, fn: Callable[[list[Any]], list[Any]], items: list[Any]) -> list[Any]:
        """`fn` over contiguous shards of `items`, one per worker, all at once; the results joined in order."""
        refs = [actor.map_shard.remote(fn, items[a:b])
                for actor, (a, b) in zip(self.actors, self._chunks(len(items)), strict=False)]
        return [x for part in self._ray.get(refs) for x in part]


class GenerationWorker(ShardWorker):
    """One backend in one Ray actor; `generate`/`score` are the Backend protocol's, over the wire."""

    def __init__(self, backend: str, options: dict[str, Any], keeper: Any = None):
        if keeper is not None:
            self.backend = _shared_cap_backend(keeper, **options)
        else:
            self.backend = get_backend(backend, **options)

    def describe(self) -> tuple[str, str]:
        return self.backend.name, self.backend.model_id

    def generate_for_task(self, task: str, constrained: bool, prompts: list[Prompt], sampling: Sampling,
                          seeds: list[int] | None) -> list[Completion]:
        """`generate` with the task's generation schema built here (a dynamic pydantic class stays local)."""

        schema = load_task(task).generation_schema() if constrained else None
        return self.backend.generate(prompts, schema, sampling, seeds=seeds)

    def generate(self, prompts: list[Prompt], schema: Any, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        return self.backend.generate(prompts, schema, sampling, seeds=seeds)

    def score(self, prompts: list[Prompt], choices: list[str], **frame: str) -> list[list[float]]:
        return self.backend.score(prompts, choices, **frame)


class RayBackendPool(_ShardMap):
    """A Backend over `workers` Ray actors: whole batches go to the workers, results come back in order.

    `map_batches` is what `generator.runner` uses when it finds it; `generate` and `score` split one
    call into contiguous chunks (one per worker) and join them in order, so the validators'
    self-consistency check runs on the cluster too; `map_shards` runs the near-duplicate check's shards.
    """

    def __init__(self, backend: str, options: dict[str, Any], workers: int, *, max_cost_usd: float | None = None):
        ray = _ray()
        if workers < 1:
            fail(f"--ray-workers must be at least 1 (got {workers})")
        self._ray = ray
        self.keeper = None
        resources: dict[str, Any] = {"num_cpus": 1}
        if backend == "vllm":
            resources = {"num_cpus": 1, "num_gpus": 1}
        elif backend == "openai":
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            resources = {"num_cpus": 0.25}  # network-bound: several clients share a core
            here = ray.get_runtime_context().get_node_id()
            keeper_cls = ray.remote(num_cpus=0)(SpendKeeper)
            # The ledger file lives in the driver's run folder: pin its one writer to the driver's node.
            self.keeper = keeper_cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)) \
                .remote(str(Path(options["ledger"]).resolve()) if options.get("ledger") else None,
                        options.get("max_cost_usd"))
            options = {**options, "ledger": None}
        # Paths the driver was given relative to its folder (a local model, the ledger) mean the same there.
        if options.get("model") and Path(options["model"]).exists():
            options = {**options, "model": str(Path(options["model"]).resolve())}
        worker_cls = ray.remote(**resources)(GenerationWorker)
        self.actors = [worker_cls.remote(backend, options, self.keeper) for _ in range(workers)]
        self.name, self.model_id = ray.get(self.actors[0].describe.remote())
        self._submitted = 0

    def map_batches(self, task: str, constrained: bool,
                    calls: Iterable[tuple[list[Prompt], Sampling, list[int]]]) -> Iterator[list[Completion]]:
        """The completions of each (prompts, sampling, seeds) call, in the order of `calls`.

        Calls go round-robin, at most two queued per worker (one running, one waiting in its mailbox)
        so no worker idles while the driver writes, and no more is generated ahead than that: a kill
        or a spend cap wastes at most two batches per worker. Once a batch meets the spend cap nothing
        more is sent; when the caller stops reading (it stops at the cap), the calls still queued are
        waited for, so every request they reserved is settled in the ledger before the workers go.
        """
        pending: deque[Any] = deque()
        todo = iter(calls)

        def submit() -> None:
            call = next(todo, None)
            if call is not None:
                actor = self.actors[self._submitted % len(self.actors)]
                self._submitted += 1
                pending.append(actor.generate_for_task.remote(task, constrained, *call))

        for _ in range(2 * len(self.actors)):
            submit()
        capped = False
        try:
            while pending:
                ref = pending.popleft()
                if not capped:
                    submit()
                completions = self._ray.get(ref)
                capped = capped or any(c.extra.get("spend_cap") for c in completions)
                yield completions
        finally:
            if pending and self.keeper is not None:
                self._ray.wait(list(pending), num_returns=len(pending), timeout=_DRAIN_S)

    def generate(self, prompts: list[Prompt], schema: Any, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        seeds = row_seeds(sampling, len(prompts), seeds)
        refs = [actor.generate.remote(prompts[a:b], schema, sampling, seeds[a:b])
                for actor, (a, b) in zip(self.actors, self._chunks(len(prompts)), strict=False)]
        return [c for part in self._ray.get(refs) for c in part]

    def score(self, prompts: list[Prompt], choices: list[str], **frame: str) -> list[list[float]]:
        refs = [actor.score.remote(prompts[a:b], choices, **frame)
                for actor, (a, b) in zip(self.actors, self._chunks(len(prompts)), strict=False)]
        return [row for part in self._ray.get(refs) for row in part]

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

    def __init__(self, workers: int):
        ray = _ray()
        if workers < 1:
            fail(f"--ray-workers must be at least 1 (got {workers})")
        self._ray = ray
        self.actors = [ray.remote(num_cpus=1)(ShardWorker).remote() for _ in range(workers)]

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
