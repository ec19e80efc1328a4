"""Batched predictions from any backend, in one of three modes.

    preds = predict(backend, task, prompts, mode="score")        # log P(label) per label: no parsing
    preds = predict(backend, task, prompts, mode="constrained")  # Outlines: the label is an enum
    preds = predict(backend, task, prompts, mode="free")         # free text, then `parser.parse_label`

Every mode returns one `Prediction` per prompt: the raw output (text, or the choice log-probs), the
label (or `invalid`) and which rule produced it, so `predictions.jsonl` shows why each item scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from backends import Backend, Sampling, score_failure
from core.task_spec import Task
from evaluator.parser import INVALID, parse_label
from evaluator.prompts import Messages, score_choices

MODES = ("score", "constrained", "free")
# Each backend call holds this many batches: a local backend orders a call's prompts (by length, those
# that share an instruction together) before batching them, so a call should hold more than one batch.
CALL_SPAN = 8


@dataclass
class Prediction:
    label: str  # a task label or "invalid"
    raw: str  # the model's text; in score mode the winning choice
    rule: str  # parser rule, "score" or "constrained"
    scores: dict[str, float] | None = field(default=None)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def predict(
    backend: Backend, task: Task, prompts: list[Messages], *, mode: str = "score", batch_size: int = 16,
    max_new_tokens: int | None = None, seed: int = 0, desc: str = "predict",
) -> list[Prediction]:
    """Predict a label for every prompt (greedy decoding): `CALL_SPAN` batches per backend call, which the
    backend runs `batch_size` prompts at a time itself."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    sampling = Sampling(temperature=0.0, max_new_tokens=max_new_tokens or task.max_new_tokens(),
                        seed=seed, strategy="greedy")
    out: list[Prediction] = []
    with tqdm(total=len(prompts), desc=desc, unit="item", leave=False) as bar:
        span = batch_size * CALL_SPAN
        for start in range(0, len(prompts), span):
            chunk = prompts[start : start + span]
            if mode == "score":
                out.extend(_score(backend, task, chunk))
            elif mode == "constrained":
                out.extend(_constrained(backend, task, chunk, sampling))
            else:
                out.extend(_free(backend, task, chunk, sampling))
            bar.update(len(chunk))
    return out


def _score(backend: Backend, task: Task, prompts: list[Messages]) -> list[Prediction]:
    scoring = score_choices(task)
    rows = backend.score(prompts, scoring.choices, **scoring.frame())
    choices = [scoring.before + c for c in scoring.choices]
    out = []
    for row in rows:
        failure = score_failure(row)
        if failure:  # an API error, the spend cap, a server without logprobs: invalid, never the first label
            out.append(Prediction(label=INVALID, raw="", rule=INVALID, error=failure))
            continue
        best = max(range(len(choices)), key=lambda i: (row[i], -i))  # ties: the first label, deterministically
        out.append(Prediction(label=task.label_names[best], raw=choices[best], rule="score",
                              scores={label: float(s) for label, s in zip(task.label_names, row, strict=True)}))
    return out


def _constrained(backend: Backend, task: Task, prompts: list[Messages], sampling: Sampling) -> list[Prediction]:
    out = []
    for completion in backend.generate(prompts, task.output_schema(), sampling):
        value = (completion.parsed or {}).get(task.label_name)
        if completion.ok and value in task.labels:
            out.append(Prediction(label=value, raw=completion.text, rule="constrained"))
        else:
            # A constrained decoder should never get here (e.g. cut off by max_new_tokens): count it
            # as invalid, and keep the reason.
            out.append(Prediction(label=INVALID, raw=completion.text, rule=INVALID,
                                  error=completion.error or f"no valid '{task.label_name}'"))
    return out


def _free(backend: Backend, task: Task, prompts: list[Messages], sampling: Sampling) -> list[Prediction]:
    out = []
    for completion in backend.generate(prompts, None, sampling):
        parsed = parse_label(completion.text, task)
        out.append(Prediction(label=parsed.label or INVALID, raw=completion.text, rule=parsed.rule,
                              error=completion.error))
    return out
