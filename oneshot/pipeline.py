"""The one-shot run: read, augment, retrieve, cross-fit, decide, train, predict, write. `run.py` calls `run`.

    results = run(Options(train=Path("train.jsonl"), val=Path("val.jsonl"), weights=Path("w"),
                          output=Path("results.json"), base_model="tiny"))

Every step runs inside one time plan (`oneshot.timeplan`). Any exception in the cross-fit, in
training or in the model's predictions costs only that step: retrieval predicts, results.json is
still complete, and the reason is under `training`. The steps: docs/oneshot.md#design-oneshotpipelinepy
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.embeddings import BUNDLED
from backends.models import SMOLLM2, is_packaged, is_tiny
from core.io import write_json_atomic
from oneshot import adapter
from oneshot.augment import augment
from oneshot.contract import TrainRow, ValRow, read_train, read_val
from oneshot.crossfit import GENERIC_REPLY, CrossFitJob, cross_fit
from oneshot.decide import choose_intent_weight, choose_reply_strategy, mix
from oneshot.knn import ONE_NN, KnnSettings, RetrievalView, choose_settings
from oneshot.neighbours import Neighbours
from oneshot.prompts import ticket_messages
from oneshot.timeplan import AUGMENT_SHARE, CROSS_FIT_SHARE, MIN_CROSS_FIT_S, WRITE_MARGIN_S, Clock, Rates


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
    started: float | None = None  # time.monotonic() at the process start (None: when `run` is called)


_STARTED = [time.monotonic()]  # the run's clock start, for the log lines' timestamps


def log(message: str) -> None:
    print(f"[run {time.monotonic() - _STARTED[0]:6.1f}s] {message}", file=sys.stderr, flush=True)


def failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def prediction_batch_size(base_model: str) -> int:
    """Rows per model call at prediction: the tiny models on a CPU, or a GPU's batch for a real model."""
    return 8 if is_tiny(base_model) else 16


def usable_base_model(asked: str) -> tuple[str, dict[str, str] | None]:
    """The base model to train: `asked` when its config can be read here (an offline model, a local folder,
    the Hub or its cache), else the packaged real model, with why. A sandbox without hub access then still
    trains and predicts with a pretrained model instead of leaving every row to retrieval."""
    if is_tiny(asked) or is_packaged(asked):
        return asked, None
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(asked)
        return asked, None
    except Exception as exc:  # no network, no cache, a gated repo, a typo: every one ends the same way
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}" if str(exc) else type(exc).__name__
    try:
        from backends.packaged import packaged_model_path

        packaged_model_path(SMOLLM2)
    except Exception as exc:  # the packaged weights are not installed either: the asked model fails later
        log(f"cannot load {asked} ({reason}), nor the packaged {SMOLLM2} ({failure(exc)[:120]})")
        return asked, None
    log(f"cannot load {asked} ({reason}): training the packaged real model {SMOLLM2} instead")
    return SMOLLM2, {"asked": asked, "used": SMOLLM2, "reason": reason}


def run(opts: Options, rows: tuple[list[TrainRow], list[ValRow]] | None = None) -> dict[str, Any]:
    """The whole call; `rows`: opts.train's and opts.val's rows when already read (None: read them here)."""
    clock = Clock(opts.started if opts.started is not None else time.monotonic(), opts.time_budget_s)
    _STARTED[0] = clock.started
    opts.base_model, base_model_fallback = usable_base_model(opts.base_model)
    train_rows, val_rows = rows if rows is not None else (read_train(opts.train), read_val(opts.val))
    intents = list(dict.fromkeys(r.intent for r in train_rows))
    log(f"{len(train_rows)} training tickets, {len(intents)} intents, {len(val_rows)} to predict")

    train_rows, augmentation = augment(train_rows, seed=opts.seed, max_cost_usd=opts.max_cost_usd,
                                       time_budget_s=AUGMENT_SHARE * clock.left())
    began = time.monotonic()
    retrieval = RetrievalView.build(train_rows, intents, opts.encoder)
    # Embedding speed on this machine (the encoder's load included): what retrieval costs per val row.
    per_text = (time.monotonic() - began) / (2 * len(train_rows) + len(intents))
    knn_settings, knn_info = (ONE_NN, {"chosen": ONE_NN.as_dict(), "reason": "--retrieval off"}) \
        if opts.retrieval == "off" else choose_settings(retrieval)
    k = adapter.default_neighbours(opts.base_model) if opts.neighbours is None else opts.neighbours
    neighbours = Neighbours(retrieval, 0 if opts.retrieval == "off" else k)
    log(f"retrieval: {knn_info}")

    decision: dict[str, Any] = {"retrieval": opts.retrieval, "neighbours_in_prompt": neighbours.k,
                                "encoder": opts.encoder, "knn": knn_info}
    weight, reply_strategy = (1.0, "generate") if opts.retrieval == "off" else (0.0, "nearest")
    rates = Rates.prior(opts.base_model).with_retrieval(per_text)
    errors: dict[str, str] = {}
    evidence: dict[str, Any] = {"used": False}
    if opts.retrieval == "auto" and len(train_rows) >= 4 and len(intents) >= 2 and opts.folds >= 2:
        # Kept for predicting with the model's scores; replies are generated only if the cross-fit says so,
        # and the final training's budget is set after it, with the decision's own reserve.
        training_s = clock.left() - rates.prediction_s(len(val_rows), score=True, generate=False)
        if training_s >= MIN_CROSS_FIT_S:
            job = CrossFitJob(train_rows, intents, retrieval, neighbours, opts.base_model, opts.seed, opts.folds,
                              opts.overrides, opts.weights, prediction_batch_size(opts.base_model), rates.generate_s)
            try:
                evidence = cross_fit(job, budget_s=CROSS_FIT_SHARE * training_s, log=log)
            except Exception as exc:  # out of memory, a config training cannot use, ...: retrieval decides
                errors["cross_fit_error"] = failure(exc)
                log(f"cross-fit failed ({errors['cross_fit_error'][:200]}); retrieval decides")
                adapter.free_memory()
        else:
            decision["cross_fit"] = {"skipped": f"{training_s:.0f} s left for training (under {MIN_CROSS_FIT_S:.0f})"}
            log(f"{training_s:.0f} s left for training: no cross-fit, retrieval decides")
    if evidence["used"]:
        weight, reply_strategy, rates = decide(evidence, decision, rates)
    else:
        reason = "cross-fit failed" if "cross_fit_error" in errors else "no cross-fit evidence"
        decision["intent"] = {"model_weight": weight, "reason": reason}
        decision["reply"] = {"strategy": reply_strategy, "reason": reason}
    log(f"decision: model weight {weight} for the intent, replies by '{reply_strategy}'")

    use_score, use_generate = weight > 0, reply_strategy == "generate"
    training = final_training(opts, train_rows, intents, neighbours, clock,
                              rates.reserve_s(len(val_rows), score=use_score, generate=use_generate,
                                              left_s=clock.left()))
    training.update(errors)
    if evidence["used"]:
        training["val_loss"] = evidence["val_loss"]
        training["val_loss_from"] = f"mean held-out loss of the {opts.folds} cross-fit folds"
        training["wall_clock_s"] = round((training.get("wall_clock_s") or 0) + evidence["wall_clock_s"], 2)
    if not training["ok"]:
        weight, reply_strategy = 0.0, "nearest"
        decision["fallback"] = "training failed: retrieval predicts"
    decision["final"] = {"model_weight": weight, "reply_strategy": reply_strategy}

    model_needed = training["ok"] and opts.retrieval != "only" and (weight > 0 or reply_strategy == "generate")
    plan = Prediction(opts, intents, retrieval, knn_settings, neighbours, weight, reply_strategy, rates, clock)
    predictions = plan.predict(val_rows, train_rows, use_model=model_needed)
    training["prediction"] = plan.info
    if plan.error:
        training["prediction_error"] = plan.error
    training["base_model"] = opts.base_model
    if base_model_fallback:
        training["base_model_fallback"] = base_model_fallback
    training.update(augmentation=augmentation, intent_counts=dict(Counter(r.intent for r in train_rows)),
                    decision=decision, time_budget_s=opts.time_budget_s, total_wall_clock_s=round(clock.elapsed(), 2))
    results = {"training": training, "predictions": predictions}
    write_json_atomic(opts.output, results)
    log(f"wrote {opts.output} ({len(predictions)} predictions) and the adapter in {opts.weights}")
    return results


def decide(evidence: dict[str, Any], decision: dict[str, Any], rates: Rates) -> tuple[float, str, Rates]:
    """The model weight and reply strategy from the cross-fit's fold-fair evidence (written to `decision`)."""
    ev = evidence["evidence"]
    a = ev.arrays()
    scored, generated, labels = a["scored"], a["generated"], a["labels"]
    weight, decision["intent"] = choose_intent_weight(a["knn_probs"][scored], a["model_logprobs"], labels[scored])
    reply_strategy, decision["reply"] = choose_reply_strategy(a["nearest_cosine"][generated], a["generated_cosine"])
    retrieval_hits = a["knn_probs"].argmax(axis=1) == labels
    decision["cross_fit"] = {
        "rows": ev.rows, "scored_rows": len(scored), "generated_rows": len(generated),
        # Both fold-fair: retrieval and the model each saw only the fit fold of every held row.
        "retrieval_accuracy": round(float(retrieval_hits.mean()), 4),
        "model_accuracy": round(float((a["model_logprobs"].argmax(axis=1) == labels[scored]).mean()), 4)
        if len(scored) else None,
        "retrieval_accuracy_on_scored_rows": round(float(retrieval_hits[scored].mean()), 4) if len(scored) else None,
        "nearest_reply_cosine_all_rows": round(float(a["nearest_cosine"].mean()), 4),
        "folds": ev.folds, "fold_val_losses": evidence["fold_val_losses"], "wall_clock_s": evidence["wall_clock_s"],
    }
    measured = rates.measured_as(load_s=max(ev.load_s) if ev.load_s else None,
                                 score_s=max(ev.score_s) if ev.score_s else None,
                                 generate_s=max(ev.generate_s) if ev.generate_s else None)
    decision["cross_fit"]["rates"] = measured.as_dict()
    return weight, reply_strategy, measured


def final_training(opts: Options, rows: list[TrainRow], intents: list[str], neighbours: Neighbours, clock: Clock,
                   reserve_s: float) -> dict[str, Any]:
    """The adapter on every row, into `--weights`, in the time the prediction reserve leaves."""
    budget = clock.left() - reserve_s
    log(f"training the final adapter on all {len(rows)} rows ({budget:.0f} s budget, {reserve_s:.0f} s kept "
        "to predict)")
    try:
        summary = adapter.train_adapter(rows, neighbours.of_rows(rows, rows), intents, base_model=opts.base_model,
                                        out=opts.weights, seed=opts.seed, budget_s=budget, overrides=opts.overrides)
    except Exception as exc:  # out of memory, a config training cannot use, ...: predictions still come out
        error = failure(exc)
        log(f"training failed ({error[:200]}); retrieval predicts")
        adapter.free_memory()
        return {"ok": False, "error": error, "fallback": "retrieval predicts every row", "steps": 0,
                "train_loss": None, "val_loss": None, "wall_clock_s": None}
    adapter.free_memory()
    return {"ok": True, **summary}


@dataclass
class Prediction:
    """One prediction per val row, in input order, inside the time plan; rows with no ticket get the most
    common intent. The model runs only for the parts the decision uses."""

    opts: Options
    intents: list[str]
    retrieval: RetrievalView
    knn_settings: KnnSettings
    neighbours: Neighbours
    weight: float
    reply_strategy: str
    rates: Rates
    clock: Clock
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    score: bool = False  # the model's intent scores are used (for the rows still to come)
    generate: bool = False  # the model's replies are used
    _seen: dict[str, float] = field(default_factory=dict)

    def predict(self, val_rows: list[ValRow], train_rows: list[TrainRow], *, use_model: bool
                ) -> list[dict[str, Any]]:
        self.score = use_model and self.weight > 0
        self.generate = use_model and self.reply_strategy == "generate"
        log(f"predicting {len(val_rows)} rows (model scores: {self.score}, model replies: {self.generate}; "
            f"{self.clock.left():.0f} s left)")
        counts: Counter = Counter()
        backend = None
        common = Counter(r.intent for r in train_rows).most_common(1)[0][0]
        chunk = 4 * prediction_batch_size(self.opts.base_model)
        predictions: list[dict[str, Any]] = []
        for start in range(0, len(val_rows), chunk):
            batch = val_rows[start : start + chunk]
            self._fit_in_time(start, len(batch), len(val_rows) - start - len(batch), loaded=backend is not None)
            if (self.score or self.generate) and backend is None:
                backend = self._load()
            began = time.perf_counter()
            usable = [r for r in batch if r.ticket]
            try:
                answers = self._chunk(usable, train_rows, backend, counts)
            except Exception as exc:  # a model error costs the model's part only: retrieval answers the rest
                self.error, self.score, self.generate = failure(exc), False, False
                log(f"model prediction failed ({self.error[:200]}); retrieval predicts from row {start}")
                answers = self._chunk(usable, train_rows, None, counts)
            per_row_ms = (time.perf_counter() - began) * 1000 / len(batch)
            for row in batch:
                intent, reply, used = answers.get(id(row), (common, GENERIC_REPLY, 0))
                predictions.append({"id": row.id, "prediction": reply, "predicted_intent": intent,
                                    "latency_ms": round(per_row_ms, 1), "tokens_used": int(used)})
        self.info.update(rows=len(val_rows), model_scored_rows=counts["scored"], generated_rows=counts["generated"],
                         model_loaded=backend is not None, rates=self.rates.as_dict())
        return predictions

    def _fit_in_time(self, start: int, rows: int, rest: int, *, loaded: bool) -> None:
        """Drop generation, then the model's scores, when the time left cannot cover this batch with them
        (and the rest of the rows with retrieval alone)."""
        tail = WRITE_MARGIN_S + rest * self.rates.retrieval_s
        load = 0.0 if loaded else self.rates.load_s
        if self.generate and self.clock.left() < tail + load + rows * (self.rates.generate_s
                                                                      + self.score * self.rates.score_s):
            self.generate = False
            self.info["generation_dropped_at_row"] = start
            log(f"no time left to generate replies: rows from {start} get the nearest reply")
        if self.score and self.clock.left() < tail + load + rows * self.rates.score_s:
            self.score = False
            self.info["scoring_dropped_at_row"] = start
            log(f"no time left for the model's scores: rows from {start} are decided by retrieval")

    def _load(self) -> Any:
        """The tuned model, loaded at the first batch that uses it (None, and retrieval only, if it fails)."""
        try:
            began = time.monotonic()
            backend = adapter.load_backend(self.opts.base_model, self.opts.weights,
                                           batch_size=prediction_batch_size(self.opts.base_model))
            self.rates = self.rates.measured_as(load_s=time.monotonic() - began, score_s=None, generate_s=None)
            return backend
        except Exception as exc:  # the adapter cannot be loaded: retrieval answers every row
            self.error, self.score, self.generate = failure(exc), False, False
            log(f"loading the tuned model failed ({self.error[:200]}); retrieval predicts")
            return None

    def _chunk(self, usable: list[ValRow], train_rows: list[TrainRow], backend: Any, counts: Counter
               ) -> dict[int, tuple[str, str, int]]:
        """{id(row): (intent, reply, tokens the model used for it)} for rows that have a ticket."""
        if not usable:
            return {}
        queries = self.retrieval.embed([r.ticket for r in usable])
        probs = self.retrieval.intent_probs(queries, self.knn_settings)
        tokens = [0] * len(usable)
        prompts = []
        score, generate = backend is not None and self.score, backend is not None and self.generate
        if score or generate:
            prompts = [ticket_messages(r.ticket, ns, self.intents)
                       for r, ns in zip(usable, self.neighbours.among(queries, train_rows), strict=True)]
        if score:
            began = time.monotonic()
            logprobs, tokens = adapter.score_intents(backend, prompts, self.intents)
            self._learn(score_s=(time.monotonic() - began) / len(usable))
            probs = mix(probs, logprobs, self.weight)
            counts["scored"] += len(usable)
        chosen = probs.argmax(axis=1)
        nearest = self.retrieval.nearest_reply(queries, chosen)
        replies = [self.retrieval.rows[j].reply if j >= 0 else GENERIC_REPLY for j in nearest]
        if generate:
            began = time.monotonic()
            generated = adapter.generate_replies(backend, prompts, [self.intents[i] for i in chosen],
                                                 max_new_tokens=adapter.reply_tokens(self.opts.base_model),
                                                 seed=self.opts.seed)
            self._learn(generate_s=(time.monotonic() - began) / len(usable))
            replies = [text or fallback for (text, _), fallback in zip(generated, replies, strict=True)]
            tokens = [t + g for t, (_, g) in zip(tokens, generated, strict=True)]
            counts["generated"] += len(usable)
        return {id(r): (self.intents[int(i)], reply, n) for r, i, reply, n in
                zip(usable, chosen, replies, tokens, strict=True)}

    def _learn(self, *, score_s: float | None = None, generate_s: float | None = None) -> None:
        """Plan the next chunks with the slowest per-row time measured so far in this prediction."""
        for name, value in (("score_s", score_s), ("generate_s", generate_s)):
            if value is not None:
                self._seen[name] = max(value, self._seen.get(name, 0.0))
        self.rates = self.rates.measured_as(load_s=None, score_s=self._seen.get("score_s"),
                                            generate_s=self._seen.get("generate_s"))
