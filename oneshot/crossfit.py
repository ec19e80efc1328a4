"""Cross-fitting: the held-out evidence on which run.py decides how much to trust the model.

    evidence = cross_fit(CrossFitJob(rows, intents, retrieval, neighbours, base_model="tiny", seed=0,
                                     n_folds=2, overrides={}, work_dir=Path("w")), budget_s=300, log=print)

The rows are split into intent-stratified folds that keep each group (a row and its paraphrases)
whole. For each held fold, both sides see only the fit fold, so neither is favoured: the adapter
is trained on it, retrieval chooses its settings on it by leave-one-out and retrieves from it, and
the held rows' prompts show neighbours from it. Only real rows are evidence. At 10x the rows the
held folds are answered within the fold's time: every held row is scored while time allows (one
batch at least), and replies are generated for a seeded sample of at most `REPLY_SAMPLE` rows per
fold while time allows (none when the fold is already out of time).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oneshot import adapter
from oneshot.contract import TrainRow
from oneshot.groups import group_folds
from oneshot.knn import RetrievalView, choose_settings
from oneshot.neighbours import Neighbours
from oneshot.prompts import ticket_messages

GENERIC_REPLY = ("Thanks for reaching out. We have received your request and a member of our support team will "
                 "look into it and get back to you shortly.")
REPLY_SAMPLE = 48  # held rows per fold that get a generated reply: enough to compare two mean similarities
VAL_LOSS_SAMPLE = 16  # held rows per fold in the eval loss (evaluated every epoch: bounded at 10x)
TRAIN_SHARE = 0.6  # of a fold's time; the rest loads the tuned model and answers the held rows
BATCH = 16  # held rows per scoring / generation call between clock checks
PROBE = 4  # the first call's rows: it measures the speed, and is the least a fold out of time answers


@dataclass
class CrossFitJob:
    rows: list[TrainRow]
    intents: list[str]
    retrieval: RetrievalView
    neighbours: Neighbours
    base_model: str
    seed: int
    n_folds: int
    overrides: dict[str, Any]
    work_dir: Path
    batch_size: int = 8
    generate_s: float = 0.0  # expected seconds per generated reply before one is measured (the prior)


@dataclass
class Evidence:
    """Per held real row (in fold order): its label, retrieval's fold-fair view and what the model said."""

    labels: list[int] = field(default_factory=list)
    knn_probs: list[np.ndarray] = field(default_factory=list)
    model_logprobs: list[np.ndarray | None] = field(default_factory=list)  # None: not scored (time)
    nearest_cosine: list[float] = field(default_factory=list)
    generated_cosine: list[float | None] = field(default_factory=list)  # None: no reply generated
    folds: list[dict[str, Any]] = field(default_factory=list)
    load_s: list[float] = field(default_factory=list)
    score_s: list[float] = field(default_factory=list)  # seconds per scored row, per call
    generate_s: list[float] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.labels)

    def arrays(self) -> dict[str, Any]:
        """What `oneshot.decide` needs: labels, retrieval probabilities and model scores of the scored rows,
        and both reply similarities on the rows that got a generated reply."""
        scored = [i for i, lp in enumerate(self.model_logprobs) if lp is not None]
        generated = [i for i, c in enumerate(self.generated_cosine) if c is not None]
        labels, knn = np.array(self.labels, dtype=np.int64), np.array(self.knn_probs)
        return {
            "labels": labels, "knn_probs": knn, "scored": np.array(scored, dtype=np.int64),
            "model_logprobs": np.array([self.model_logprobs[i] for i in scored]),
            "nearest_cosine": np.array(self.nearest_cosine),
            "generated": np.array(generated, dtype=np.int64),
            "generated_cosine": np.array([self.generated_cosine[i] for i in generated]),
        }


def cross_fit(job: CrossFitJob, *, budget_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Train on each fit fold, answer its held fold; returns the evidence and the folds' val losses."""
    started = time.monotonic()
    folds = group_folds(job.rows, job.n_folds, job.seed)
    evidence = Evidence()
    losses: list[float | None] = []
    for k, held in enumerate(folds):
        held_real = [r for r in held if not r.is_paraphrase]
        if not held_real or len(folds) < 2:
            continue
        remaining = budget_s - (time.monotonic() - started)
        per_fold = remaining / (len(folds) - k)
        if per_fold < 5:
            log(f"cross-fit fold {k + 1}: no time left; stopping the cross-fit here")
            break
        fit = [r for j, fold in enumerate(folds) if j != k for r in fold]
        log(f"cross-fit fold {k + 1}/{len(folds)}: training on {len(fit)} rows, answering {len(held_real)}")
        losses.append(_one_fold(job, k, fit, held_real, evidence, fold_deadline=time.monotonic() + per_fold))
    if not evidence.rows:
        return {"used": False, "reason": "no held-out fold was answered"}
    valid = [x for x in losses if x is not None]
    return {"used": True, "evidence": evidence, "val_loss": float(np.mean(valid)) if valid else None,
            "fold_val_losses": losses, "wall_clock_s": round(time.monotonic() - started, 2)}


def fold_retrieval(view: RetrievalView, fit: list[int], held: list[int], labels: np.ndarray
                   ) -> tuple[np.ndarray, list[str], np.ndarray, dict[str, Any]]:
    """Retrieval's fold-fair answer for the `held` rows (view indices): settings chosen by leave-one-out on
    the `fit` rows and neighbours among them only. Returns (intent probabilities, the nearest reply of
    each held row's true intent, that reply's cosine to the held row's own reply, the settings chosen)."""
    fit_view = view.subset(fit)
    settings, info = choose_settings(fit_view)
    queries = view.tickets[held]
    nearest = fit_view.nearest_reply(queries, labels)
    replies = [fit_view.rows[j].reply if j >= 0 else GENERIC_REPLY for j in nearest]
    # The replies are embedded already (the view holds every training reply): no second pass.
    picked = np.stack([fit_view.replies[j] if j >= 0 else view.embed([GENERIC_REPLY])[0] for j in nearest])
    similarity = (picked * view.replies[held]).sum(axis=1)
    return fit_view.intent_probs(queries, settings), replies, similarity, info


def fold_prompts(neighbours: Neighbours, fit: list[TrainRow], held: list[TrainRow]) -> dict[str, list[TrainRow]]:
    """Each row's solved neighbours in the fold: fitted rows among the fit fold outside their own group,
    held rows among the fit fold alone (as the model never saw them, retrieval must not either)."""
    queries = neighbours.view.tickets[[neighbours.position[r.id] for r in held]]
    return {**neighbours.of_rows(fit, fit),
            **dict(zip([r.id for r in held], neighbours.among(queries, fit), strict=True))}


def _one_fold(job: CrossFitJob, k: int, fit: list[TrainRow], held: list[TrainRow], evidence: Evidence,
              fold_deadline: float) -> float | None:
    """Train on `fit`, then put each held row's fold-fair evidence into `evidence`; returns the eval loss."""
    view, position = job.retrieval, job.neighbours.position
    labels = np.array([job.intents.index(r.intent) for r in held])
    held_idx = [position[r.id] for r in held]
    knn_probs, _, nearest_cos, knn_info = fold_retrieval(view, [position[r.id] for r in fit], held_idx, labels)
    prompts_of = fold_prompts(job.neighbours, fit, held)
    rng = random.Random(f"{job.seed}:fold{k}")
    order = list(range(len(held)))
    rng.shuffle(order)  # a seeded sample of held rows where time or REPLY_SAMPLE cuts
    val_rows = [held[i] for i in sorted(order[:VAL_LOSS_SAMPLE])]
    out = job.work_dir / f".fold{k + 1}"
    train_budget = TRAIN_SHARE * (fold_deadline - time.monotonic())
    try:
        summary = adapter.train_adapter(fit, prompts_of, job.intents, base_model=job.base_model, out=out,
                                        seed=job.seed, budget_s=train_budget, overrides=job.overrides,
                                        held_out=val_rows)
        began = time.monotonic()
        backend = adapter.load_backend(job.base_model, out, batch_size=job.batch_size)
        evidence.load_s.append(time.monotonic() - began)
        prompts = [ticket_messages(r.ticket, prompts_of[r.id], job.intents) for r in held]
        logprobs = _score_in_time(backend, prompts, job.intents, order, fold_deadline, evidence)
        generated = _generate_in_time(backend, prompts, [r.intent for r in held], order[:REPLY_SAMPLE],
                                      fold_deadline, job.base_model, job.seed, evidence, expected_s=job.generate_s)
        del backend
    finally:
        adapter.free_memory()
        shutil.rmtree(out, ignore_errors=True)
    generated_cos: list[float | None] = [None] * len(held)
    if generated:
        ids = sorted(generated)
        vectors = view.embed([generated[i] or " " for i in ids])
        for i, c in zip(ids, (vectors * view.replies[[held_idx[i] for i in ids]]).sum(axis=1), strict=True):
            generated_cos[i] = float(c)
    evidence.labels += labels.tolist()
    evidence.knn_probs += list(knn_probs)
    evidence.model_logprobs += [logprobs.get(i) for i in range(len(held))]
    evidence.nearest_cosine += nearest_cos.tolist()
    evidence.generated_cosine += generated_cos
    evidence.folds.append({"fit_rows": len(fit), "held_rows": len(held), "scored_rows": len(logprobs),
                           "generated_rows": len(generated), "steps": summary["steps"],
                           "stopped_early": summary.get("stopped_early"), "val_loss": summary["val_loss"],
                           "knn": knn_info})
    return summary["val_loss"]


def _score_in_time(backend: Any, prompts: list[Any], intents: list[str], order: list[int], deadline: float,
                   evidence: Evidence) -> dict[int, np.ndarray]:
    """Model log-probabilities of the held rows in `order`, batch by batch while the fold has time."""
    found: dict[int, np.ndarray] = {}
    per_row = None
    for batch in _batches(order):
        if per_row is not None and time.monotonic() + per_row * len(batch) > deadline:
            break
        began = time.monotonic()
        logprobs, _ = adapter.score_intents(backend, [prompts[i] for i in batch], intents)
        per_row = (time.monotonic() - began) / len(batch)
        evidence.score_s.append(per_row)
        found.update(zip(batch, logprobs, strict=True))
    return found


def _generate_in_time(backend: Any, prompts: list[Any], intents: list[str], sample: list[int], deadline: float,
                      base_model: str, seed: int, evidence: Evidence, *, expected_s: float = 0.0) -> dict[int, str]:
    """Replies for the held rows in `sample`, batch by batch while the fold has time (`expected_s` per row
    until one is measured). None at all when there is no time: the reply is then retrieval's."""
    found: dict[int, str] = {}
    per_row = expected_s
    for batch in _batches(sample):
        if time.monotonic() + per_row * len(batch) > deadline:
            break
        began = time.monotonic()
        replies = adapter.generate_replies(backend, [prompts[i] for i in batch], [intents[i] for i in batch],
                                           max_new_tokens=adapter.reply_tokens(base_model), seed=seed)
        per_row = (time.monotonic() - began) / len(batch)
        evidence.generate_s.append(per_row)
        found.update((i, text) for i, (text, _) in zip(batch, replies, strict=True))
    return found


def _batches(rows: list[int]) -> list[list[int]]:
    """`PROBE` rows first (a small first step that measures the speed), then `BATCH` at a time."""
    return [rows[:PROBE]] + [rows[i : i + BATCH] for i in range(PROBE, len(rows), BATCH)] if rows else []
