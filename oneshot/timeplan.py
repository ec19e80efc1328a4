"""The time plan of one run.py call: one deadline, shares for each step, model speeds measured as it goes.

    clock = Clock(started=time.monotonic(), budget_s=1500)
    rates = Rates.prior("tiny")                       # before anything was measured
    rates.prediction_s(500, score=True, generate=False)
    rates = rates.measured(load_s=2.1, score_s=0.04, generate_s=0.6)   # from the cross-fit's held folds

The deadline counts from the process start (run.py notes it before the heavy imports). Each step
gets a share of what is left and checks the clock between batches: augmentation stops sending,
the cross-fit answers a sample of its held rows, training stops early (`trainer.callbacks.TimeBudget`),
and prediction drops generation, then the model's scores, for the rows it has no time left for
(retrieval answers them; what was dropped is recorded). Why these shares: docs/oneshot.md#time-plan
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from backends.models import is_packaged, is_tiny
from backends.tiny import slowdown

AUGMENT_SHARE = 0.1  # of the whole budget, at most, for the API paraphrases
CROSS_FIT_SHARE = 0.45  # of the training time (budget minus the prediction reserve)
MIN_CROSS_FIT_S = 30.0  # below this there is no point: retrieval decides
MAX_PREDICTION_SHARE = 0.5  # of the time left at the final training: the rest trains the adapter DIR must hold
SAFETY = 1.3  # prediction estimates are per-row means; the reserve keeps room for slower rows
WRITE_MARGIN_S = 5.0  # results.json, the last log lines, interpreter exit


@dataclass(frozen=True)
class Clock:
    started: float  # time.monotonic() at the process start
    budget_s: float

    @property
    def deadline(self) -> float:
        return self.started + self.budget_s

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class Rates:
    """Seconds this model takes here: loading the tuned model, and per val row for scoring and replies."""

    load_s: float
    score_s: float
    generate_s: float
    retrieval_s: float = 0.02  # embedding one ticket and reading its neighbours (MiniLM on a CPU)
    measured: bool = False

    @classmethod
    def prior(cls, base_model: str, *, on_gpu: bool | None = None) -> Rates:
        """What to expect before anything ran: a tiny model on a CPU, or a 3B-class model on a GPU / CPU."""
        if is_tiny(base_model):
            factor = slowdown()  # the slowed stand-in (a test and bench device) is expected to be slower
            return cls(load_s=3.0 * factor, score_s=0.05 * factor, generate_s=0.5 * factor)
        if on_gpu is None:
            import torch  # not at the top: run.py pins MKL and thread settings before torch first loads

            on_gpu = torch.cuda.is_available()
        if is_packaged(base_model) and not on_gpu:  # a 135-270M real model on a CPU (smollm2-135m: the fallback)
            return cls(load_s=6.0, score_s=1.0, generate_s=4.0)
        # A 3B model in bf16, 16 prompts of about 1,500 tokens per call; on a CPU, several times slower.
        return cls(load_s=45.0, score_s=0.2, generate_s=0.8) if on_gpu else cls(load_s=90.0, score_s=2.0,
                                                                                 generate_s=6.0)

    def measured_as(self, *, load_s: float | None, score_s: float | None, generate_s: float | None) -> Rates:
        """These rates with what was measured in place of the prior (None: not measured, the prior stays)."""
        return replace(self, load_s=self.load_s if load_s is None else load_s,
                       score_s=self.score_s if score_s is None else score_s,
                       generate_s=self.generate_s if generate_s is None else generate_s, measured=True)

    def with_retrieval(self, seconds_per_row: float) -> Rates:
        """These rates with retrieval's measured cost per val row (embedding its ticket, reading neighbours)."""
        return replace(self, retrieval_s=max(seconds_per_row, 1e-3))

    def prediction_s(self, n_val: int, *, score: bool, generate: bool) -> float:
        """Seconds to keep for predicting `n_val` rows with the model parts the decision uses."""
        model = self.load_s + n_val * (self.score_s * score + self.generate_s * generate) if score or generate else 0.0
        return SAFETY * (model + n_val * self.retrieval_s) + WRITE_MARGIN_S + 5.0

    def reserve_s(self, n_val: int, *, score: bool, generate: bool, left_s: float) -> float:
        """Time to keep for prediction when the final training starts: what the decision needs, but at most
        half of what is left (prediction then drops the model's parts it has no time for), and never less
        than retrieval alone needs."""
        floor = self.prediction_s(n_val, score=False, generate=False)
        return max(floor, min(self.prediction_s(n_val, score=score, generate=generate), MAX_PREDICTION_SHARE * left_s))

    def as_dict(self) -> dict[str, float | bool]:
        return {"load_s": round(self.load_s, 3), "score_s_per_row": round(self.score_s, 4),
                "generate_s_per_row": round(self.generate_s, 4), "retrieval_s_per_row": round(self.retrieval_s, 4),
                "measured": self.measured}
