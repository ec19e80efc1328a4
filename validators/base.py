"""The validator protocol, the registry by name (the `validators:` entries of a task YAML) and helpers.

A validator is built from a task, its options (the YAML entry, then CLI overrides) and a context
(references, backend, seed); `check(records)` returns one `Verdict` per record, in order, and
changes nothing. `doubt(verdict)` maps its verdict to 0..1 for the review queue's ordering.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from backends.embeddings import embed
from backends.metering import new_stage, record_texts
from core.errors import fail
from core.records import Record, Verdict
from core.task_spec import Task

# name -> "module:Class", imported when a chain uses it (keeps `import validators` light).
REGISTRY: dict[str, str] = {
    "schema": "validators.schema:SchemaValidator",
    "quality": "validators.quality:QualityValidator",
    "near_duplicates": "validators.near_duplicates:NearDuplicateValidator",
    "language": "validators.language:LanguageValidator",
    "paraphrase_duplicates": "validators.paraphrase:ParaphraseDuplicateValidator",
    "self_consistency": "validators.self_consistency:SelfConsistencyValidator",
    "neighbour_agreement": "validators.neighbours:NeighbourAgreementValidator",
    "judge": "validators.judge:JudgeValidator",
}
EVAL_SPLITS = frozenset({"eval", "test", "validation", "val", "dev"})


@dataclass
class Context:
    """What validators may need besides the records: reference data, a model backend, a seed.

    Attributes:
        references: real or earlier records; those whose `split` is in EVAL_SPLITS are the eval
            set (contamination), the rest are seeds / training data.
        backend: a `backends.Backend` for model-based checks, or None to skip them.
        redis_url, workers: with both, `near_duplicates` runs on the workers through one Redis index.
        judge_backend: the model the LLM judge asks (`--judge-model`); None: `backend`.
        earlier: samples of this run accepted in earlier rounds (`generate.py --accepted`): the duplicate
            checks compare with them as they do with references; no other check reads them.
    """

    references: list[Record] = field(default_factory=list)
    backend: Any = None
    seed: int = 0
    redis_url: str | None = None
    workers: Any = None  # a validators.shared_index.ShardPool (Ray workers) that splittable checks may use
    judge_backend: Any = None
    earlier: list[Record] = field(default_factory=list)

    @property
    def eval_refs(self) -> list[Record]:
        return [r for r in self.references if (r.split or "") in EVAL_SPLITS]

    @property
    def train_refs(self) -> list[Record]:
        return [r for r in self.references if (r.split or "") not in EVAL_SPLITS]


@runtime_checkable
class Validator(Protocol):
    name: str

    def check(self, records: list[Record]) -> list[Verdict]: ...

    def doubt(self, verdict: Verdict) -> float: ...


class BaseValidator:
    """Holds the task, options (unknown keys are a UserError naming the task file) and context."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    # Expensive validators only see records every cheap validator passed (see chain.run_chain).
    expensive: ClassVar[bool] = False
    needs_backend: ClassVar[bool] = False

    def __init__(self, task: Task, options: dict[str, Any] | None = None, context: Context | None = None):
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            fail(f"{task.path}: validators[{self.name}].{unknown[0]}: unknown option "
                 f"(allowed: {', '.join(sorted(self.defaults)) or 'none'})")
        self.task = task
        self.options = {**self.defaults, **options}
        self.context = context or Context()
        self.stage = new_stage()  # its models' calls, tokens, seconds and cost (backends.metering)

    @property
    def model(self) -> Any:
        """The backend a model-based check asks (None: it is skipped)."""
        return self.context.backend

    def check(self, records: list[Record]) -> list[Verdict]:
        raise NotImplementedError

    def doubt(self, verdict: Verdict) -> float:
        """0 = no doubt left after this check, 1 = as doubtful as a rejection."""
        return 0.0 if verdict.passed else 1.0

    def verdict(self, passed: bool, score: float | None = None, reason: str = "", **details: Any) -> Verdict:
        return Verdict(name=self.name, passed=passed, score=None if score is None else round(float(score), 4),
                       reason=reason, details=details)

    def claimed_label(self, record: Record) -> str | None:
        return record.labels.get(self.task.label_name)


class EncoderValidator(BaseValidator):
    """A validator that embeds texts with a sentence encoder (options `model`, `device`, `batch_size`), every
    call counted as texts and seconds into its usage row (paraphrase_duplicates, neighbour_agreement)."""

    expensive = True

    def embed(self, texts: list[str]) -> np.ndarray:
        start = time.perf_counter()
        vectors = embed(texts, self.options["model"], device=self.options["device"],
                        batch_size=int(self.options["batch_size"]))
        record_texts(self.stage, str(self.options["model"]), len(texts), time.perf_counter() - start)
        return vectors


def validator_class(name: str) -> type[BaseValidator]:
    if name not in REGISTRY:
        fail(f"unknown validator '{name}' (available: {', '.join(REGISTRY)})")
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build(name: str, task: Task, options: dict[str, Any] | None = None,
          context: Context | None = None) -> BaseValidator:
    """A validator by registry name, with its options checked."""
    return validator_class(name)(task, options, context)


def clip01(value: float) -> float:
    return max(0.0, min(1.0, float(value)))
