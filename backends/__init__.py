"""Model backends behind one small protocol, registered by name and imported only when used.

    backend = get_backend("transformers", model="tiny")
    completions = backend.generate(prompts, schema=task.output_schema(), sampling=Sampling(max_new_tokens=64))
    logprobs = backend.score(prompts, choices=task.label_names)   # one row of log P(choice) per prompt
    logprobs = backend.score(prompts, ["a", "b"], before='{"label": "', after='"}')   # inside an answer

A prompt is either a list of chat messages (`[{"role": ..., "content": ...}]`, rendered with the
model's own chat template, or sent as-is to a chat API) or a plain string (used verbatim).
Randomness is per row (`seeds=[...]`); a `score` row that could not be computed is a `FailedScores` row.
Design: docs/generation.md#design-backends__init__py
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from core.errors import fail
from core.io import describe_validation_error

Prompt = str | list[dict[str, str]]

# OpenMP threads (torch's intra-op pool and MKL's) sleep when they wait instead of spinning, unless the
# user says otherwise. Read once when torch loads libgomp, so it is set here, before any module of ours
# imports torch (tests/backends/test_threads.py checks every entry point). On a machine whose cores are
# shared with another busy process, a spinning thread holds the core its partner needs to finish the
# same parallel region: at load 3.4 on 2 cores a smollm2-135m training step took 2.8x, decoding 3-5x as
# long spinning as sleeping. On a calmer run (load 1.6-3.0) spinning was 1.2-2x faster: the trade-off is
# measured, not settled (docs/benchmarks.md#real-weights). The thread count is unchanged: same results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters. `temperature == 0` means greedy. `seed` makes sampling repeatable."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    strategy: str = "greedy"  # a name for reports: which strategy produced which samples

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    """One generation. Never an exception: a bad row carries its `error` and is kept."""

    text: str
    parsed: dict[str, Any] | None = None
    error: str | None = None
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Backend(Protocol):
    name: str
    model_id: str

    def generate(
        self, prompts: list[Prompt], schema: type[BaseModel] | None, sampling: Sampling,
        seeds: list[int] | None = None,
    ) -> list[Completion]: ...

    def score(self, prompts: list[Prompt], choices: list[str], *, before: str = "",
              after: str = "") -> list[list[float]]:
        """log P(choice | prompt + before) of each choice's own tokens, per prompt; `after` is the text
        that follows the choice in a trained answer (it shapes the tokens, is never scored)."""
        ...


def row_seeds(sampling: Sampling, n: int, seeds: list[int] | None) -> list[int]:
    """One seed per prompt: the caller's, else `sampling.seed + i` (a row's draw never depends on its batch)."""
    if seeds is None:
        return [sampling.seed + i for i in range(n)]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} prompts")
    return [int(s) for s in seeds]


class FailedScores(list):
    """A `score` row that could not be computed: NaN per choice, and the reason (kept on the row)."""

    def __init__(self, n_choices: int, reason: str):
        super().__init__([math.nan] * n_choices)
        self.reason = reason


def score_failure(row: list[float]) -> str | None:
    """Why a `score` row carries no usable log-probabilities, or None when it does."""
    reason = getattr(row, "reason", None)
    if reason:
        return str(reason)
    if not any(math.isfinite(x) for x in row):
        return "no finite log-probability for any choice"
    return None


# name -> "module:Class"; modules are imported only when their backend is asked for.
BACKENDS: dict[str, str] = {
    "transformers": "backends.transformers_backend:TransformersBackend",
    "vllm": "backends.vllm_backend:VLLMBackend",
    "openai": "backends.openai_backend:OpenAIBackend",
}


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate a registered backend by name (options go to its constructor)."""
    if name not in BACKENDS:
        fail(f"unknown backend '{name}' (available: {', '.join(BACKENDS)})")
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"backend '{name}' needs a package that is not installed ({exc.name}); "
             f"for vllm: pip install 'seedloop[vllm]' on a GPU machine")
    return getattr(module, class_name)(**options)


def parse_with_schema(text: str, schema: type[BaseModel] | None) -> tuple[dict[str, Any] | None, str | None]:
    """Parse `text` as JSON valid under `schema`: (object, None) or (None, reason). No schema: (None, None)."""
    if schema is None:
        return None, None
    from pydantic import ValidationError

    try:
        return schema.model_validate_json(text).model_dump(), None
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return None, f"invalid JSON: {first['msg']}"
        return None, describe_validation_error(exc)
