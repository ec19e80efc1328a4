"""The Ray pool's worker side: the actors and what runs inside them (backends/ray_pool.py drives them).

`GenerationWorker` holds one backend in one actor (the Backend protocol over the wire, and whole
batches for the driver's `map_batches`); `ShardWorker` runs a function over one shard (the validators'
split work); `SpendKeeper` is the one spend ledger of a distributed openai run, and
`_shared_cap_backend` the openai backend whose reservations go through it. A worker reads its API key
on its own node (`use_key_file`), so the key never travels in a call, an actor's arguments or the job.
Design: docs/generation.md#design-backendsray_poolpy
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends import Completion, Prompt, Sampling, get_backend
from backends.openai_backend import OpenAIBackend, SpendLedger
from backends.pricing import cost_usd
from core.errors import UserError, fail
from core.optional import require
from core.tasks import load_task


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


def read_key_file(path: str | Path) -> str:
    """The API key in `path` (its first line), or one error line naming the file and this host."""
    try:
        key = Path(path).read_text(encoding="utf-8").strip().splitlines()[0].strip()
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        reason = "empty" if isinstance(exc, IndexError) else type(exc).__name__
        fail(f"{path}: cannot read the API key file on {socket.gethostname()} ({reason}); "
             "every node needs it at that path (or OPENAI_API_KEY in its environment)")
    if not key:
        fail(f"{path}: the API key file on {socket.gethostname()} is empty")
    return key


def use_key_file(path: str | Path | None) -> None:
    """Put the key of `path` into this process's own environment, where the openai backend reads it.

    The key is read where the backend runs (the driver, or each Ray worker), so it never travels in
    a call, an actor's arguments or the job's runtime_env, all of which the cluster stores.
    """
    if path:
        os.environ["OPENAI_API_KEY"] = read_key_file(path)


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


class GenerationWorker(ShardWorker):
    """One backend in one Ray actor; `generate`/`score` are the Backend protocol's, over the wire."""

    def __init__(self, backend: str, options: dict[str, Any], keeper: Any = None, key_file: str | None = None):
        # A failure to start is kept and reported by `describe` (one line on the driver), not raised:
        # Ray would otherwise print the creation task's whole traceback.
        self.backend, self.error = None, ""
        try:
            use_key_file(key_file)  # read here, on the worker's node: the key never crosses the cluster
            if keeper is not None:
                self.backend = _shared_cap_backend(keeper, **options)
            else:
                self.backend = get_backend(backend, **options)
        except UserError as exc:
            self.error = f"{socket.gethostname()}: {exc}"

    def _backend(self) -> Any:
        if self.backend is None:  # a restart whose start failed (say, the key file went away)
            fail(f"a Ray worker could not start: {self.error}")
        return self.backend

    def describe(self) -> tuple[str, str, int, str]:
        """(backend name, model id, this process's pid, why it could not start or "")."""
        if self.backend is None:
            return "", "", os.getpid(), self.error
        return self.backend.name, self.backend.model_id, os.getpid(), ""

    def generate_batch(self, task: str, constrained: bool, prompts: list[Prompt], sampling: Sampling,
                       seeds: list[int] | None) -> tuple[int, list[Completion]]:
        """(this process's pid, `generate` with the task's generation schema built here: a dynamic
        pydantic class stays local). The pid tells the driver a batch came from a restarted worker."""

        schema = load_task(task).generation_schema() if constrained else None
        return os.getpid(), self._backend().generate(prompts, schema, sampling, seeds=seeds)

    def generate(self, prompts: list[Prompt], schema: Any, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        return self._backend().generate(prompts, schema, sampling, seeds=seeds)

    def score(self, prompts: list[Prompt], choices: list[str], **frame: str) -> list[list[float]]:
        return self._backend().score(prompts, choices, **frame)
