"""The one-shot run: read, retrieve, cross-fit, train, decide, predict, write. `run.py` calls `run`.

    results = run(Options(train=Path("train.jsonl"), val=Path("val.jsonl"), weights=Path("w"),
                          output=Path("results.json"), base_model="tiny"))

1. Embed the training tickets (sentence-transformers; the bundled all-MiniLM-L6-v2 by default) and
   choose retrieval's settings by leave-one-out on the training rows (`oneshot.knn`).
2. Cross-fit: split the rows into two intent-stratified folds, train an adapter on each and let it
   score and answer the other fold, with each row's k nearest other rows in its prompt. Their mean
   held-out loss is `val_loss`; their answers decide how much to trust the model (`oneshot.decide`).
3. Train the final adapter on every row (into `--weights`).
4. Predict every val row: intent = argmax of the mix of retrieval's and the model's probabilities;
   reply = the model's generation, or the reply of the most similar training ticket of that intent,
   whichever the cross-fit found closer to the ideal replies.
If the budget is short, the cross-fit is skipped and retrieval decides; if training fails (out of
memory), retrieval still predicts every row.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.io import write_json_atomic
from core.models import is_tiny
from core.retrieval import BUNDLED
from oneshot import model as lm
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
    neighbours: int | None = None  # None: oneshot.model.default_neighbours
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

    def __init__(self, view: RetrievalView, k: int):
        self.view, self.k = view, k
        self.position = {r.id: i for i, r in enumerate(view.rows)}

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


def cosine(view: RetrievalView, texts: list[str], ideals: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros(0)
    a, b = view.embed(texts), view.embed(ideals)
    return (a * b).sum(axis=1)


def cross_fit(opts: Options, rows: list[TrainRow], intents: list[str], view: RetrievalView, knn: KnnSettings,
              near: Neighbours, budget_s: float) -> dict[str, Any]:
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
        prompts_of = {**near.of_rows(fit, fit), **near.of_rows(held, rows)}
        summary = lm.train_adapter(fit, prompts_of, intents, base_model=opts.base_model, out=out,
                                   seed=opts.seed, budget_s=per_fold * 0.7, overrides=opts.overrides,
                                   held_out=held)
        losses.append(summary["val_loss"])
        steps.append(summary["steps"])
        backend = lm.load_backend(opts.base_model, out)
        prompts = [ticket_messages(r.ticket, prompts_of[r.id], intents) for r in held]
        logprobs, _ = lm.score_intents(backend, prompts, intents)
        replies = lm.generate_replies(backend, prompts, [r.intent for r in held],
                                      max_new_tokens=lm.reply_tokens(opts.base_model), seed=opts.seed)
        del backend
        lm.free_memory()
        _remove_tree(out)
        model_logprobs.append(logprobs)
        generated += [text for text, _ in replies]
        ideal += [r.reply for r in held]
        labels += [intents.index(r.intent) for r in held]
        held_rows += held
    if not held_rows:
        return {"used": False}
    positions = np.array([near.position[r.id] for r in held_rows])
    knn_probs = view.intent_probs(view.tickets[positions], knn, exclude=positions)
    nearest = view.nearest_reply(view.tickets[positions], np.array(labels), exclude=positions)
    nearest_texts = [view.rows[j].reply if j >= 0 else GENERIC_REPLY for j in nearest]
    valid = [x for x in losses if x is not None]
    return {
        "used": True, "rows": len(held_rows), "labels": np.array(labels), "knn_probs": knn_probs,
        "model_logprobs": np.concatenate(model_logprobs), "val_loss": float(np.mean(valid)) if valid else None,
        "nearest_cosine": cosine(view, nearest_texts, ideal), "generated_cosine": cosine(view, generated, ideal),
        "fold_val_losses": losses, "fold_steps": steps, "wall_clock_s": round(time.monotonic() - started, 2),
    }


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def prediction_reserve_s(base_model: str, n_val: int) -> float:
    """Seconds to keep for loading the tuned model and predicting `n_val` rows."""
    if is_tiny(base_model):
        return 10.0 + 0.3 * n_val
    import torch

    return 60.0 + n_val * (1.5 if torch.cuda.is_available() else 8.0)


def run(opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + opts.time_budget_s
    train_rows = read_train(opts.train)
    val_rows = read_val(opts.val)
    intents = list(dict.fromkeys(r.intent for r in train_rows))
    log(f"{len(train_rows)} training tickets, {len(intents)} intents, {len(val_rows)} to predict")

    train_rows, augmentation = augment(train_rows, opts)
    view = RetrievalView.build(train_rows, intents, opts.encoder)
    knn, knn_info = (ONE_NN, {"chosen": ONE_NN.as_dict(), "reason": "--retrieval off"}) \
        if opts.retrieval == "off" else choose_settings(view)
    k = lm.default_neighbours(opts.base_model) if opts.neighbours is None else opts.neighbours
    near = Neighbours(view, 0 if opts.retrieval == "off" else k)
    log(f"retrieval: {knn_info}")

    decision: dict[str, Any] = {"retrieval": opts.retrieval, "neighbours_in_prompt": near.k,
                                "encoder": opts.encoder, "knn": knn_info}
    weight, reply_strategy = (1.0, "generate") if opts.retrieval == "off" else (0.0, "nearest")
    training_budget = deadline - time.monotonic() - prediction_reserve_s(opts.base_model, len(val_rows))
    evidence: dict[str, Any] = {"used": False}
    if opts.retrieval == "auto" and len(train_rows) >= 4 and len(intents) >= 2 and opts.folds >= 2:
        if training_budget >= 30:
            try:
                evidence = cross_fit(opts, train_rows, intents, view, knn, near, budget_s=training_budget * 0.45)
            except (RuntimeError, MemoryError) as exc:  # out of memory above all: retrieval still decides
                log(f"cross-fit failed ({type(exc).__name__}: {str(exc)[:160]}); retrieval decides")
                lm.free_memory()
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

    training = final_training(opts, train_rows, intents, near, deadline, len(val_rows))
    if evidence["used"]:
        training["val_loss"] = evidence["val_loss"]
        training["val_loss_from"] = f"mean held-out loss of the {opts.folds} cross-fit folds"
        training["wall_clock_s"] = round((training.get("wall_clock_s") or 0) + evidence["wall_clock_s"], 2)
    if not training.get("ok"):
        weight, reply_strategy = 0.0, "nearest"
        decision["fallback"] = "training failed: retrieval predicts"
    decision["final"] = {"model_weight": weight, "reply_strategy": reply_strategy}

    predictions = predict(opts, val_rows, train_rows, intents, view, knn, near, weight, reply_strategy,
                          use_model=bool(training.get("ok")) and opts.retrieval != "only")
    training.update(augmentation=augmentation, intent_counts=dict(Counter(r.intent for r in train_rows)),
                    decision=decision, total_wall_clock_s=round(time.monotonic() - started, 2))
    results = {"training": training, "predictions": predictions}
    write_json_atomic(opts.output, results)
    log(f"wrote {opts.output} ({len(predictions)} predictions) and the adapter in {opts.weights}")
    return results


def final_training(opts: Options, rows: list[TrainRow], intents: list[str], near: Neighbours, deadline: float,
                   n_val: int) -> dict[str, Any]:
    budget = deadline - time.monotonic() - prediction_reserve_s(opts.base_model, n_val)
    log(f"training the final adapter on all {len(rows)} rows ({budget:.0f} s budget)")
    try:
        summary = lm.train_adapter(rows, near.of_rows(rows, rows), intents, base_model=opts.base_model,
                                   out=opts.weights, seed=opts.seed, budget_s=budget, overrides=opts.overrides)
    except (RuntimeError, MemoryError) as exc:  # out of memory above all: predictions still come out
        log(f"training failed ({type(exc).__name__}: {str(exc)[:160]}); retrieval predicts")
        lm.free_memory()
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}", "steps": 0, "train_loss": None,
                "val_loss": None, "wall_clock_s": None}
    lm.free_memory()
    return {"ok": True, **summary}


def predict(opts: Options, val_rows: list[ValRow], train_rows: list[TrainRow], intents: list[str],
            view: RetrievalView, knn: KnnSettings, near: Neighbours, weight: float, reply_strategy: str, *,
            use_model: bool, batch_size: int = 8) -> list[dict[str, Any]]:
    """One prediction per val row, in input order; rows with no ticket get the most common intent."""
    from tqdm import tqdm

    common = Counter(r.intent for r in train_rows).most_common(1)[0][0]
    backend = lm.load_backend(opts.base_model, opts.weights) if use_model else None
    predictions: list[dict[str, Any]] = []
    for start in tqdm(range(0, len(val_rows), batch_size), desc="predict", unit="batch", file=sys.stderr):
        batch = val_rows[start : start + batch_size]
        began = time.perf_counter()
        usable = [r for r in batch if r.ticket]
        queries = view.embed([r.ticket for r in usable])
        probs = view.intent_probs(queries, knn) if len(usable) else np.zeros((0, len(intents)))
        tokens = [0] * len(usable)
        if backend is not None and usable:
            prompts = [ticket_messages(r.ticket, ns, intents)
                       for r, ns in zip(usable, near.among(queries, train_rows, [None] * len(usable)), strict=True)]
            logprobs, tokens = lm.score_intents(backend, prompts, intents)
            probs = mix(probs, logprobs, weight)
        chosen = probs.argmax(axis=1) if len(usable) else np.zeros(0, dtype=int)
        if backend is not None and usable and reply_strategy == "generate":
            generated = lm.generate_replies(backend, prompts, [intents[i] for i in chosen],
                                            max_new_tokens=lm.reply_tokens(opts.base_model), seed=opts.seed)
            replies = [text or view.rows[j].reply for (text, _), j in
                       zip(generated, view.nearest_reply(queries, chosen), strict=True)]
            tokens = [t + g for t, (_, g) in zip(tokens, generated, strict=True)]
        else:
            replies = [view.rows[j].reply if j >= 0 else GENERIC_REPLY for j in view.nearest_reply(queries, chosen)]
        per_row_ms = (time.perf_counter() - began) * 1000 / len(batch)
        answers = {id(r): (intents[int(i)], reply, n) for r, i, reply, n in
                   zip(usable, chosen, replies, tokens, strict=True)}
        for row in batch:
            intent, reply, used = answers.get(id(row), (common, GENERIC_REPLY, 0))
            predictions.append({"id": row.id, "prediction": reply, "predicted_intent": intent,
                                "latency_ms": round(per_row_ms, 1), "tokens_used": int(used)})
    return predictions


def augment(rows: list[TrainRow], opts: Options) -> tuple[list[TrainRow], dict[str, Any]]:
    """Paraphrase the training tickets through an OpenAI-compatible API, when one is configured.

    Paraphrases keep their source row's intent and reply, pass the task's validators (schema, quality,
    near-duplicates against the real rows) and cost at most `max_cost_usd`. Any API error (an HTTP 402
    included) means no augmentation, never a failed run.
    """
    import os

    if not (os.environ.get("OPENAI_API_KEY") and os.environ.get("OPENAI_BASE_URL")):
        return rows, {"used": False, "reason": "OPENAI_API_KEY and OPENAI_BASE_URL not both set"}
    from core.tasks import load_task
    from generator.backends import Sampling, get_backend
    from validators.chain import run_chain

    task = load_task(lm.TASK).with_labels(list(dict.fromkeys(r.intent for r in rows)))
    rng = random.Random(opts.seed)
    model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    by_ticket = {r.ticket: r for r in rows}
    try:
        backend = get_backend("openai", model=model, max_cost_usd=opts.max_cost_usd)
        tones = task.attributes.get("tone", {}).get("*", ["polite"])
        prompts = [task.render_generation("paraphrase", lang="en", label=r.intent,
                                          seeds=[{"text": r.ticket, "label": r.intent}],
                                          attributes={"tone": rng.choice(tones), "plan": ""}) for r in rows]
        completions = backend.generate(prompts, task.generation_schema(),
                                       Sampling(temperature=0.9, seed=opts.seed, max_new_tokens=400))
    except Exception as exc:  # the contract: degrade to no augmentation, never crash
        return rows, {"used": False, "reason": f"API error: {type(exc).__name__}: {str(exc)[:200]}"}
    from core.records import Record

    real = [Record.new(task=task.name, lang="en", text=r.ticket, source="real", split="train",
                       labels={"intent": r.intent, "reply": r.reply}) for r in rows]
    paraphrases = [
        Record.new(task=task.name, lang="en", text=c.parsed[task.input_name], source="synthetic", split="train",
                   labels={"intent": r.intent, "reply": r.reply}, provenance={"paraphrase_of": r.id, "model": model})
        for r, c in zip(rows, completions, strict=True) if c.ok and c.parsed
    ]
    accepted, _, _ = run_chain(task, paraphrases, references=real, seed=opts.seed, progress=False,
                               skip=("self_consistency",))
    extra = [TrainRow(f"{rec.provenance['paraphrase_of']}~p", rec.text, rec.labels["intent"], rec.labels["reply"])
             for rec in accepted if rec.text not in by_ticket]
    info = {"used": bool(extra), "model": model, "requested": len(prompts), "parsed": len(paraphrases),
            "accepted": len(extra), "cost_usd": round(getattr(backend, "cost_usd", 0.0), 4),
            "errors": sorted({c.error for c in completions if c.error})[:3]}
    return rows + extra, info
