"""The one-shot run: read, retrieve, cross-fit, train, decide, predict, write. `run.py` calls `run`.

    results = run(Options(train=Path("train.jsonl"), val=Path("val.jsonl"), weights=Path("w"),
                          output=Path("results.json"), base_model="tiny"))

If the budget is short, the cross-fit is skipped and retrieval decides; if training fails (out of
memory), retrieval still predicts every row. The steps: docs/oneshot.md#design-oneshotpipelinepy
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from backends.embeddings import BUNDLED
from backends.models import is_tiny
from core.io import write_json_atomic
from oneshot import adapter
from oneshot.augment import augment
from oneshot.contract import TrainRow, ValRow, read_train, read_val
from oneshot.decide import choose_intent_weight, choose_reply_strategy, mix
from oneshot.knn import ONE_NN, KnnSettings, RetrievalView, choose_settings
from oneshot.prompts import ticket_messages

GENERIC_REPLY = ("Thanks for reaching out. We have received your request and a member of our support team will "
                 "look into it and get back to you shortly.")


@dataclass
class Options:
    train: Path
    val: Path
    weights: Path
    output: Path
    base_model: str = "unsloth/Llama-3.2-3B-Instruct"
    seed: int = 0
    time_budget_s: float = 1500.0
    retrieval: str = "auto"  # auto | off | only
    neighbours: int | None = None  # None: oneshot.adapter.default_neighbours
    encoder: str = BUNDLED
    folds: int = 2
    overrides: dict[str, Any] = field(default_factory=dict)
    max_cost_usd: float = 3.0


def log(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


def folds_of(rows: list[TrainRow], n_folds: int, seed: int) -> list[list[TrainRow]]:
    """Intent-stratified folds: each intent's rows are shuffled (seeded) and dealt round-robin."""
    rng = random.Random(seed)
    by_intent: dict[str, list[TrainRow]] = defaultdict(list)
    for row in rows:
        by_intent[row.intent].append(row)
    folds: list[list[TrainRow]] = [[] for _ in range(n_folds)]
    turn = 0
    for intent in sorted(by_intent):
        members = sorted(by_intent[intent], key=lambda r: r.id)
        rng.shuffle(members)
        for row in members:
            folds[turn % n_folds].append(row)
            turn += 1
    return folds


class Neighbours:
    """The k most similar training rows of a ticket, among a pool, most similar last."""

    def __init__(self, retrieval: RetrievalView, k: int):
        self.view, self.k = retrieval, k
        self.position = {r.id: i for i, r in enumerate(retrieval.rows)}

    def among(self, queries: np.ndarray, pool: list[TrainRow], exclude_ids: list[str | None]) -> list[list[TrainRow]]:
        if self.k <= 0 or not pool:
            return [[] for _ in range(len(queries))]
        index = np.array([self.position[r.id] for r in pool])
        sims = queries @ self.view.tickets[index].T
        for q, excluded in enumerate(exclude_ids):
            if excluded is not None:
                sims[q, [j for j, r in enumerate(pool) if r.id == excluded]] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")
        picked = []
        for q in range(len(queries)):
            best = [pool[j] for j in order[q] if np.isfinite(sims[q, j])][: self.k]
            picked.append(best[::-1])
        return picked

    def of_rows(self, rows: list[TrainRow], pool: list[TrainRow]) -> dict[str, list[TrainRow]]:
        """Each row's neighbours among `pool`, never itself (the leave-one-out prompts of training)."""
        queries = self.view.tickets[[self.position[r.id] for r in rows]]
        return dict(zip([r.id for r in rows], self.among(queries, pool, [r.id for r in rows]), strict=True))


def cosine(retrieval: RetrievalView, texts: list[str], ideals: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros(0)
    a, b = retrieval.embed(texts), retrieval.embed(ideals)
    return (a * b).sum(axis=1)


def cross_fit(opts: Options, rows: list[TrainRow], intents: list[str], retrieval: RetrievalView, knn_settings: KnnSettings,
              neighbours: Neighbours, budget_s: float) -> dict[str, Any]:
    """Train on one fold, answer the other; returns held-out evidence for the decision and the val loss."""
    started = time.monotonic()
    folds = folds_of(rows, opts.folds, opts.seed)
    labels, model_logprobs, generated, ideal, held_rows, losses, steps = [], [], [], [], [], [], []
    for k, held in enumerate(folds):
        if not held:
            continue
        fit = [r for j, fold in enumerate(folds) if j != k for r in fold]
        remaining = budget_s - (time.monotonic() - started)
        per_fold = remaining / (len(folds) - k)
        if per_fold < 5:
            log(f"cross-fit fold {k + 1}: no time left; stopping the cross-fit here")
            break
        out = opts.weights / f".fold{k + 1}"
        log(f"cross-fit fold {k + 1}/{len(folds)}: training on {len(fit)} rows, answering {len(held)}")
        # Fitted rows see only fitted neighbours; held-out rows see every other row, as val rows will.
        prompts_of = {**neighbours.of_rows(fit, fit), **neighbours.of_rows(held, rows)}
        summary = adapter.train_adapter(fit, prompts_of, intents, base_model=opts.base_model, out=out,
                                   seed=opts.seed, budget_s=per_fold * 0.7, overrides=opts.overrides,
                                   held_out=held)
        losses.append(summary["val_loss"])
        steps.append(summary["steps"])
        backend = adapter.load_backend(opts.base_model, out)
        prompts = [ticket_messages(r.ticket, prompts_of[r.id], intents) for r in held]
        logprobs, _ = adapter.score_intents(backend, prompts, intents)
        replies = adapter.generate_replies(backend, prompts, [r.intent for r in held],
                                      max_new_tokens=adapter.reply_tokens(opts.base_model), seed=opts.seed)
        del backend
        adapter.free_memory()
        _remove_tree(out)
        model_logprobs.append(logprobs)
        generated += [text for text, _ in replies]
        ideal += [r.reply for r in held]
        labels += [intents.index(r.intent) for r in held]
        held_rows += held
    if not held_rows:
        return {"used": False}
    positions = np.array([neighbours.position[r.id] for r in held_rows])
    knn_probs = retrieval.intent_probs(retrieval.tickets[positions], knn_settings, exclude=positions)
    nearest = retrieval.nearest_reply(retrieval.tickets[positions], np.array(labels), exclude=positions)
    nearest_texts = [retrieval.rows[j].reply if j >= 0 else GENERIC_REPLY for j in nearest]
    valid = [x for x in losses if x is not None]
    return {
        "used": True, "rows": len(held_rows), "labels": np.array(labels), "knn_probs": knn_probs,
        "model_logprobs": np.concatenate(model_logprobs), "val_loss": float(np.mean(valid)) if valid else None,
        "nearest_cosine": cosine(retrieval, nearest_texts, ideal), "generated_cosine": cosine(retrieval, generated, ideal),
        "fold_val_losses": losses, "fold_steps": steps, "wall_clock_s": round(time.monotonic() - started, 2),
    }


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def prediction_reserve_s(base_model: str, n_val: int) -> float:
    """Seconds to keep for loading the tuned model and predicting `n_val` rows."""
    if is_tiny(base_model):
        return 10.0 + 0.3 * n_val
    import torch  # not at the top: run.py pins MKL and thread settings before torch first loads

    return 60.0 + n_val * (1.5 if torch.cuda.is_available() else 8.0)


def run(opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + opts.time_budget_s
    train_rows = read_train(opts.train)
    val_rows = read_val(opts.val)
    intents = list(dict.fromkeys(r.intent for r in train_rows))
    log(f"{len(train_rows)} training tickets, {len(intents)} intents, {len(val_rows)} to predict")

    train_rows, augmentation = augment(train_rows, seed=opts.seed, max_cost_usd=opts.max_cost_usd)
    retrieval = RetrievalView.build(train_rows, intents, opts.encoder)
    knn_settings, knn_info = (ONE_NN, {"chosen": ONE_NN.as_dict(), "reason": "--retrieval off"}) \
        if opts.retrieval == "off" else choose_settings(retrieval)
    k = adapter.default_neighbours(opts.base_model) if opts.neighbours is None else opts.neighbours
    neighbours = Neighbours(retrieval, 0 if opts.retrieval == "off" else k)
    log(f"retrieval: {knn_info}")

    decision: dict[str, Any] = {"retrieval": opts.retrieval, "neighbours_in_prompt": neighbours.k,
                                "encoder": opts.encoder, "knn": knn_info}
    weight, reply_strategy = (1.0, "generate") if opts.retrieval == "off" else (0.0, "nearest")
    training_budget = deadline - time.monotonic() - prediction_reserve_s(opts.base_model, len(val_rows))
    evidence: dict[str, Any] = {"used": False}
    if opts.retrieval == "auto" and len(train_rows) >= 4 and len(intents) >= 2 and opts.folds >= 2:
        if training_budget >= 30:
            try:
                evidence = cross_fit(opts, train_rows, intents, retrieval, knn_settings, neighbours,
                                     budget_s=training_budget * 0.45)
            except (RuntimeError, MemoryError) as exc:  # out of memory above all: retrieval still decides
                log(f"cross-fit failed ({type(exc).__name__}: {str(exc)[:160]}); retrieval decides")
                adapter.free_memory()
        else:
            log(f"{training_budget:.0f} s left for training: no cross-fit, retrieval decides")
    if evidence["used"]:
        weight, decision["intent"] = choose_intent_weight(evidence["knn_probs"], evidence["model_logprobs"],
                                                          evidence["labels"])
        reply_strategy, decision["reply"] = choose_reply_strategy(evidence["nearest_cosine"],
                                                                  evidence["generated_cosine"])
        decision["cross_fit"] = {k: evidence[k] for k in ("rows", "fold_val_losses", "fold_steps", "wall_clock_s")}
    else:
        decision["intent"] = {"model_weight": weight, "reason": "no cross-fit evidence"}
        decision["reply"] = {"strategy": reply_strategy, "reason": "no cross-fit evidence"}
    log(f"decision: model weight {weight} for the intent, replies by '{reply_strategy}'")

    training = final_training(opts, train_rows, intents, neighbours, deadline, len(val_rows))
    if evidence["used"]:
        training["val_loss"] = evidence["val_loss"]
        training["val_loss_from"] = f"mean held-out loss of the {opts.folds} cross-fit folds"
        training["wall_clock_s"] = round((training.get("wall_clock_s") or 0) + evidence["wall_clock_s"], 2)
    if not training.get("ok"):
        weight, reply_strategy = 0.0, "nearest"
        decision["fallback"] = "training failed: retrieval predicts"
    decision["final"] = {"model_weight": weight, "reply_strategy": reply_strategy}

    predictions = predict(opts, val_rows, train_rows, intents, retrieval, knn_settings, neighbours, weight,
                          reply_strategy,
                          use_model=bool(training.get("ok")) and opts.retrieval != "only")
    training.update(augmentation=augmentation, intent_counts=dict(Counter(r.intent for r in train_rows)),
                    decision=decision, total_wall_clock_s=round(time.monotonic() - started, 2))
    results = {"training": training, "predictions": predictions}
    write_json_atomic(opts.output, results)
    log(f"wrote {opts.output} ({len(predictions)} predictions) and the adapter in {opts.weights}")
    return results


def final_training(opts: Options, rows: list[TrainRow], intents: list[str], neighbours: Neighbours, deadline: float,
                   n_val: int) -> dict[str, Any]:
    budget = deadline - time.monotonic() - prediction_reserve_s(opts.base_model, n_val)
    log(f"training the final adapter on all {len(rows)} rows ({budget:.0f} s budget)")
    try:
        summary = adapter.train_adapter(rows, neighbours.of_rows(rows, rows), intents, base_model=opts.base_model,
                                   out=opts.weights, seed=opts.seed, budget_s=budget, overrides=opts.overrides)
    except (RuntimeError, MemoryError) as exc:  # out of memory above all: predictions still come out
        log(f"training failed ({type(exc).__name__}: {str(exc)[:160]}); retrieval predicts")
        adapter.free_memory()
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}", "steps": 0, "train_loss": None,
                "val_loss": None, "wall_clock_s": None}
    adapter.free_memory()
    return {"ok": True, **summary}


def predict(opts: Options, val_rows: list[ValRow], train_rows: list[TrainRow], intents: list[str],
            retrieval: RetrievalView, knn_settings: KnnSettings, neighbours: Neighbours, weight: float,
            reply_strategy: str, *,
            use_model: bool, batch_size: int = 8) -> list[dict[str, Any]]:
    """One prediction per val row, in input order; rows with no ticket get the most common intent."""
    common = Counter(r.intent for r in train_rows).most_common(1)[0][0]
    backend = adapter.load_backend(opts.base_model, opts.weights) if use_model else None
    predictions: list[dict[str, Any]] = []
    for start in tqdm(range(0, len(val_rows), batch_size), desc="predict", unit="batch", file=sys.stderr):
        batch = val_rows[start : start + batch_size]
        began = time.perf_counter()
        usable = [r for r in batch if r.ticket]
        queries = retrieval.embed([r.ticket for r in usable])
        probs = retrieval.intent_probs(queries, knn_settings) if len(usable) else np.zeros((0, len(intents)))
        tokens = [0] * len(usable)
        if backend is not None and usable:
            prompts = [ticket_messages(r.ticket, ns, intents)
                       for r, ns in zip(usable, neighbours.among(queries, train_rows, [None] * len(usable)),
                                        strict=True)]
            logprobs, tokens = adapter.score_intents(backend, prompts, intents)
            probs = mix(probs, logprobs, weight)
        chosen = probs.argmax(axis=1) if len(usable) else np.zeros(0, dtype=int)
        if backend is not None and usable and reply_strategy == "generate":
            generated = adapter.generate_replies(backend, prompts, [intents[i] for i in chosen],
                                            max_new_tokens=adapter.reply_tokens(opts.base_model), seed=opts.seed)
            replies = [text or retrieval.rows[j].reply for (text, _), j in
                       zip(generated, retrieval.nearest_reply(queries, chosen), strict=True)]
            tokens = [t + g for t, (_, g) in zip(tokens, generated, strict=True)]
        else:
            replies = [retrieval.rows[j].reply if j >= 0 else GENERIC_REPLY for j in retrieval.nearest_reply(queries, chosen)]
        per_row_ms = (time.perf_counter() - began) * 1000 / len(batch)
        answers = {id(r): (intents[int(i)], reply, n) for r, i, reply, n in
                   zip(usable, chosen, replies, tokens, strict=True)}
        for row in batch:
            intent, reply, used = answers.get(id(row), (common, GENERIC_REPLY, 0))
            predictions.append({"id": row.id, "prediction": reply, "predicted_intent": intent,
                                "latency_ms": round(per_row_ms, 1), "tokens_used": int(used)})
    return predictions
