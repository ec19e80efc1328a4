"""Real weights: utilisation of this machine's roof, and each speed fix before/after on the same inputs.

    python -m bench real                                     # SLOW (minutes): `python -m bench --all` runs it too
    SEEDLOOP_BENCH_REAL_MODELS=smollm2-135m,gemma3-270m python -m bench real
    SEEDLOOP_BENCH_REAL_PARTS=train python -m bench real    # only the training rows (train, score, predict, generate)

On each model (default `smollm2-135m`), one CPU thread (stable on a shared machine), the roof measured
in the same process (bench/bench_roof.py) and, alternated round by round (A, B, A, B), best of each:

- LoRA training with the demo's recipe (trainer defaults for a small model: batch 8, r=16, dropout
  0.05) on the fin_sentiment samples: tokens/s with the loss's LM head on label positions only
  (trainer/lm_head.py) against TRL's head over every position (the same losses are checked), and the
  achieved FLOP/s as a share of the roof;
- choice scoring as the evaluator runs it (`evaluator.inference.predict(mode="score")`) on the 120
  fin_sentiment items: items/s with prompts batched by length against the given order, and the share;
- the evaluator's constrained mode: decode's shared-instruction prefill against whole prompts in order;
- constrained generation (the task's generation schema, the generator's sampling) against free
  generation of the same rows to the same lengths, and the share;
- batch-1 greedy decoding as a share of the memory-bandwidth bound (read rate / weight bytes per token).

FLOPs are counted from the model's shape and the tokens it ran (bench/flops.py); the counting and the
numbers: docs/benchmarks.md#real-weights. The OpenMP wait-policy rows: bench/bench_real_threads.py.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from typing import Any

from backends import Sampling
from backends.models import SMOLLM2, load_model
from backends.transformers_backend import TransformersBackend
from bench import BenchRow, ratio
from bench.bench_evaluator import _records
from bench.bench_generation import _StopAt, _stopped, seed_plans
from bench.bench_roof import Roof, measure
from bench.flops import Count
from core.tasks import load_task
from evaluator.inference import predict
from evaluator.prompts import score_choices, tuned_prompts
from generator.runner import _in_process
from trainer.config import TrainConfig
from trainer.shapes import model_shape

SLOW = True
MODELS_ENV = "SEEDLOOP_BENCH_REAL_MODELS"
PARTS_ENV = "SEEDLOOP_BENCH_REAL_PARTS"  # train,score,predict,generate (default: all four)
TRAIN_STEPS = 4
SCORE_BATCH = 16
GEN_BATCH = 16  # the generator's batch (generate.py --batch-size): 16 decoding slots
GEN_PROMPTS = 2 * GEN_BATCH
DECODE_TOKENS = 48
SHARE_TARGET = 0.5  # issue 35: training and scoring at >= 50% of the measured matmul roof
CONSTRAINED_TARGET = 0.95


def run() -> list[BenchRow]:
    import torch

    models = [m.strip() for m in os.environ.get(MODELS_ENV, SMOLLM2).split(",") if m.strip()]
    parts = [p.strip() for p in os.environ.get(PARTS_ENV, ",".join(PARTS)).split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"{PARTS_ENV}: unknown {sorted(unknown)}; one or more of {list(PARTS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        roof = measure(1, bf16=False)
        rows: list[BenchRow] = []
        for model in models:
            for part in parts:
                rows += PARTS[part](model, roof)
    finally:
        torch.set_num_threads(threads)
    return rows


def _where(roof: Roof) -> str:
    return (f"1 thread; roof {roof.matmul / 1e9:.0f} GFLOP/s (best fp32 mm), read {roof.read_bytes_per_s / 1e9:.1f} "
            f"GB/s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _alternate(runs: dict[str, Any], rounds: int = 2, timed: bool = False) -> dict[str, tuple[float, Any]]:
    """Each named run `rounds` times, alternated (A, B, A, B): (best seconds, the result of the best).
    `timed`: each run times itself and returns (seconds, result) (its setup left out)."""
    best: dict[str, tuple[float, Any]] = {}
    for _ in range(rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - start
            if timed:
                seconds, result = result
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, result)
    return best


# ---- training ----------------------------------------------------------------------------------------------
def _train(cfg: TrainConfig, task: Any, records: list, trl_head: bool,
           bf16: bool = False) -> tuple[float, tuple[int, list[float], Count, int]]:
    """One run of `TRAIN_STEPS` steps: (seconds of `trainer.train()`, (tokens, per-step losses, what it ran,
    LoRA parameters)); building the trainer (the model's load, tokenising) is not timed. `bf16`: under
    bfloat16 autocast (not what the trainer does on a CPU: a what-if)."""
    import torch

    from trainer.sft import build_trainer

    trainer = build_trainer(cfg, task, records, [])
    if trl_head:  # the forward trainer/lm_head.py replaced: TRL's head over every position
        base = trainer.model.get_base_model()
        base.forward = base.forward.trl_forward
    trainer.args.disable_tqdm = True
    count = Count(model_shape(cfg.model))
    with count.watching(trainer.model), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    lora = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" in n)
    return seconds, (trainer.state.num_input_tokens_seen, losses, count, lora)


def _step_peak(cfg: TrainConfig, task: Any, records: list, trl_head: bool) -> int:
    """Peak tensor bytes of one forward + backward on a batch of `cfg.batch_size` (trainer/memory.py)."""
    from trainer.memory import TensorPeak
    from trainer.sft import build_trainer

    trainer = build_trainer(cfg, task, records, [])
    base = trainer.model.get_base_model()
    if trl_head:
        base.forward = base.forward.trl_forward
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(cfg.batch_size)])
    trainer.model.train()
    with TensorPeak("cpu") as peak:
        trainer.model(**batch, fused_lm_head=True).loss.backward()
    return peak.bytes


def training_rows(model: str, roof: Roof) -> list[BenchRow]:
    task = load_task("fin_sentiment")
    records = _records(task)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(task=task.name, model=model, out=tmp, device="cpu", max_steps=TRAIN_STEPS, val_fraction=0.0,
                          logging_steps=1).resolved()
        used = records[: cfg.batch_size * TRAIN_STEPS]
        _train(cfg, task, used[: cfg.batch_size], trl_head=False)  # warm-up: first-call allocations
        best = _alternate({"ours": lambda: _train(cfg, task, used, trl_head=False),
                           "trl": lambda: _train(cfg, task, used, trl_head=True)}, timed=True)
        peaks = {head: _step_peak(cfg, task, used, trl_head=head) / 2**20 for head in (False, True)}
        # What-ifs that change the results (not done by default): no LoRA dropout, bf16 autocast; one run each.
        what_if = _alternate({"no_dropout": lambda: _train(replace(cfg, lora_dropout=0.0), task, used, trl_head=False),
                              "bf16": lambda: _train(cfg, task, used, trl_head=False, bf16=True)}, rounds=1,
                             timed=True)
    (t_ours, (tokens, ours_loss, count, lora)), (t_trl, (_, trl_loss, _, _)) = best["ours"], best["trl"]
    same = max(abs(a - b) for a, b in zip(ours_loss, trl_loss, strict=True))
    tps, tps_trl = tokens / t_ours, tokens / t_trl
    achieved = count.lora_training_flops(lora) / t_ours
    data = (f"{TRAIN_STEPS} steps of {cfg.batch_size} fin_sentiment samples (en + vi), LoRA r={cfg.lora_r} dropout "
            f"{cfg.lora_dropout}: {tokens} real tokens ({count.computed} with padding), {count.labels} with a loss")
    rows = []
    for name, label in (("no_dropout", "lora_dropout 0"), ("bf16", "bfloat16 autocast")):
        seconds, (n_tokens, losses, _, _) = what_if[name]
        diff = max(abs(a - b) for a, b in zip(ours_loss, losses, strict=True))
        rows.append(BenchRow(f"real.train.what_if_{name}_tokens_per_s.{model}", n_tokens / seconds, tps,
                             ratio(n_tokens / seconds, tps), None, "tokens/s",
                             f"not a fix, a what-if: {label} against the default recipe (one run, after the best of "
                             f"two of the default); it changes the losses: max |difference| per step {diff:.3f}; "
                             f"{data}; {_where(roof)}"))
    return [
        BenchRow(f"real.train.compact_head_vs_trl_head_tokens_per_s.{model}", tps, tps_trl, ratio(tps, tps_trl), None,
                 "tokens/s", f"tokens / seconds of trainer.train() (building the trainer apart); baseline: TRL's fused "
                 f"LM head over every position (what it does off CUDA), same "
                 f"model, data, seed; {data}; per-step losses max |difference| {same:.1e}; {_where(roof)}"),
        BenchRow(f"real.train.compact_head_vs_trl_head_step_peak_mb.{model}", peaks[False], peaks[True],
                 ratio(peaks[False], peaks[True], higher_is_better=False), None, "MB",
                 f"peak tensor memory of one forward + backward on {cfg.batch_size} samples (trainer.memory.TensorPeak: "
                 f"every storage an operator allocates, weights apart); baseline: TRL's head over every position"),
        BenchRow(f"real.train.lora_share_of_roof.{model}", achieved / 1e9, roof.matmul / 1e9,
                 ratio(achieved, roof.matmul), SHARE_TARGET, "GFLOP/s",
                 f"achieved: 4 x body + 3 x attention + 6 x adapters per real token + 4 x head per label "
                 f"(bench/flops.py) / train() wall time, optimizer and data loading included; {data}; "
                 f"{_where(roof)}"),
        *rows,
    ]


# ---- scoring -----------------------------------------------------------------------------------------------
def scoring_rows(model: str, roof: Roof) -> list[BenchRow]:
    import numpy as np

    task = load_task("fin_sentiment")
    prompts = tuned_prompts(task, _records(task))
    weights, tokenizer = load_model(model, device="cpu")
    backend = TransformersBackend(model, loaded=(weights, tokenizer), batch_size=SCORE_BATCH)
    choices = score_choices(task)
    count = Count(model_shape(model))

    def given_order() -> list[list[float]]:  # what `predict` did before: one call per batch, in order
        out: list[list[float]] = []
        for start in range(0, len(prompts), SCORE_BATCH):
            out += backend.score(prompts[start : start + SCORE_BATCH], choices.choices, **choices.frame())
        return out

    def ours() -> list[list[float]]:
        count.reset()
        with count.watching(backend.model):
            preds = predict(backend, task, prompts, mode="score", batch_size=SCORE_BATCH)
        return [[p.scores[label] for label in task.label_names] for p in preds]

    backend.score(prompts[:SCORE_BATCH], choices.choices)  # warm-up
    best = _alternate({"ours": ours, "given": given_order})
    (t_ours, new), (t_old, old) = best["ours"], best["given"]
    diff = float(np.abs(np.array(new) - np.array(old)).max())
    same = float((np.array(new).argmax(1) == np.array(old).argmax(1)).mean())
    n = len(prompts)
    achieved = count.inference_flops() / t_ours
    data = (f"{n} items (60 en + 60 vi), batch {SCORE_BATCH}, {len(choices.choices)} one-token choices: "
            f"{count.positions} real positions through the model (shared instructions once per batch), "
            f"{count.computed} with padding")
    return [
        BenchRow(f"real.score.length_sorted_vs_given_order_items_per_s.{model}", n / t_ours, n / t_old,
                 ratio(t_old, t_ours), None, "items/s",
                 f"baseline: the same backend fed one batch of {SCORE_BATCH} at a time in the items' order (before); "
                 f"{data}; scores max |difference| {diff:.1e} nats, same argmax {same:.0%}; {_where(roof)}"),
        BenchRow(f"real.score.share_of_roof.{model}", achieved / 1e9, roof.matmul / 1e9, ratio(achieved, roof.matmul),
                 SHARE_TARGET, "GFLOP/s", f"achieved: 2 x body + attention per real position + the LM head on "
                 f"the positions it ran (bench/flops.py) / wall time of predict(mode='score'); {data}; {_where(roof)}"),
    ]


def prediction_rows(model: str, roof: Roof) -> list[BenchRow]:
    """The evaluator's constrained mode (the label as an enum under the task's output schema) on the 120
    items through `decode`: prompts in family order, each family's shared instruction prefilled once,
    against the same prompts in the given order, each refill prefilled whole (before)."""
    from backends.decode import decode

    task = load_task("fin_sentiment")
    prompts = tuned_prompts(task, _records(task))
    backend = TransformersBackend(model, loaded=load_model(model, device="cpu"), batch_size=SCORE_BATCH)
    tokenizer = backend.tokenizer
    ids = tokenizer([backend.render(p) for p in prompts], add_special_tokens=False)["input_ids"]
    processor = backend.logits_processor(task.output_schema())
    eos = backend.model.generation_config.eos_token_id
    counts = {name: Count(model_shape(model)) for name in ("shared", "plain")}

    def run(name: str) -> list[list[int]]:
        processor.reset()
        counts[name].reset()
        with counts[name].watching(backend.model):
            return decode(backend.model, ids, batch_size=SCORE_BATCH, pad_id=tokenizer.pad_token_id,
                          max_new_tokens=task.max_new_tokens(), stop_ids=eos if isinstance(eos, list) else [eos],
                          processors=[processor], share_prefixes=name == "shared")

    run("shared")  # warm-up: the schema's masks
    best = _alternate({"shared": lambda: run("shared"), "plain": lambda: run("plain")})
    (t_new, new), (t_old, old) = best["shared"], best["plain"]
    same = sum(a == b for a, b in zip(new, old, strict=True))
    n = len(prompts)
    return [
        BenchRow(f"real.predict_constrained.shared_prefill_vs_plain_items_per_s.{model}", n / t_new, n / t_old,
                 ratio(t_old, t_new), 1.0, "items/s",
                 f"{n} items (60 en + 60 vi, two instructions), {SCORE_BATCH} slots, the label under the output "
                 f"schema; positions through the model: {counts['shared'].computed} (family order, each family's "
                 f"shared tokens once per refill) against {counts['plain'].computed} (given order, whole prompts); "
                 f"same tokens on {same}/{n} rows; {_where(roof)}"),
    ]


# ---- generation and batch-1 decoding -----------------------------------------------------------------------
def generation_rows(model: str, roof: Roof) -> list[BenchRow]:
    from backends.decode import decode

    task = load_task("fin_sentiment")
    schema = task.generation_schema()
    plans = seed_plans(task, GEN_PROMPTS)
    prompts, seeds = [plan.messages for plan in plans], [plan.sampling.seed for plan in plans]
    backend = TransformersBackend(model, device="cpu", batch_size=GEN_BATCH)
    tokenizer = backend.tokenizer
    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=task.max_new_tokens(with_input=True), seed=0)
    backend.generate(prompts[:2], schema, Sampling(max_new_tokens=4))  # compiles the schema, warms up
    constrained = backend.generate(prompts, schema, sampling, seeds=seeds)
    same_length = _StopAt([c.completion_tokens - 1 if _stopped(c) else None for c in constrained],
                          tokenizer.eos_token_id)
    count = Count(model_shape(model))

    def ours() -> list:  # the runner now: the two batches in one call (generator/runner.py CALL_BATCHES)
        count.reset()
        with count.watching(backend.model):
            return [c for batch in _in_process(backend, [plans[:GEN_BATCH], plans[GEN_BATCH:]], schema) for c in batch]

    def one_batch_per_call() -> list:  # the runner before: one generate call per batch of 16
        return [c for start in range(0, len(plans), GEN_BATCH)
                for c in backend.generate([p.messages for p in plans[start : start + GEN_BATCH]], schema, sampling,
                                          seeds=[p.sampling.seed for p in plans[start : start + GEN_BATCH]])]

    best = _alternate({"constrained": ours, "per_batch": one_batch_per_call,
                       "free": lambda: backend._generate_free(prompts, sampling, processor=same_length, seeds=seeds)})
    (t_con, con), (t_free, free), (t_batch, per_batch) = best["constrained"], best["free"], best["per_batch"]
    con_tokens, free_tokens = sum(c.completion_tokens for c in con), sum(c.completion_tokens for c in free)
    lengths = "identical" if [c.completion_tokens for c in con] == [c.completion_tokens for c in free] else "DIFFER"
    prefill = sum(len(tokenizer(backend.render(p), add_special_tokens=False)["input_ids"]) for p in prompts)
    achieved = count.inference_flops() / t_con

    # Batch 1, greedy, no stop: every step reads every weight once.
    ids = tokenizer([backend.render(prompts[0])], add_special_tokens=False)["input_ids"]
    one = lambda: decode(backend.model, ids, batch_size=1, pad_id=tokenizer.pad_token_id,  # noqa: E731
                         max_new_tokens=DECODE_TOKENS, stop_ids=())
    one()
    short = lambda: decode(backend.model, ids, batch_size=1, pad_id=tokenizer.pad_token_id,  # noqa: E731
                           max_new_tokens=1, stop_ids=())
    best = _alternate({"decode": one, "prefill": short}, rounds=3)
    per_token = (best["decode"][0] - best["prefill"][0]) / (DECODE_TOKENS - 1)  # the prompt's prefill taken off
    shape_count = Count(model_shape(model))
    bound = roof.read_bytes_per_s / shape_count.weight_bytes
    parsed = sum(c.ok for c in con)
    same_samples = "identical" if [c.text for c in con] == [c.text for c in per_batch] else "DIFFER"
    return [
        BenchRow(f"real.generate.two_batches_per_call_vs_one_samples_per_s.{model}", len(con) / t_con,
                 len(con) / t_batch, ratio(t_batch, t_con), None, "samples/s",
                 f"the generator's calls (generator/runner.py): {len(con)} plans in batches of {GEN_BATCH}, one "
                 f"backend call for both batches (continuous batching refills a finished row's slot) against one "
                 f"call per batch (before: each call ends in a shrinking batch); samples {same_samples}; "
                 f"{_where(roof)}"),
        BenchRow(f"real.generate.constrained_vs_free_tokens_per_s.{model}", con_tokens / t_con, free_tokens / t_free,
                 ratio(con_tokens / t_con, free_tokens / t_free), CONSTRAINED_TARGET, "tokens/s",
                 f"baseline: free generation of the same rows stopped where each constrained row stopped (lengths "
                 f"{lengths}), same decoding loop and sampling (t=0.8, top-p 0.95); {len(prompts)} generator prompts "
                 f"({prefill} prompt tokens), {GEN_BATCH} slots; {con_tokens} new tokens, {parsed}/{len(con)} parsed; "
                 f"{_where(roof)}"),
        BenchRow(f"real.generate.share_of_roof.{model}", achieved / 1e9, roof.matmul / 1e9,
                 ratio(achieved, roof.matmul), None, "GFLOP/s",
                 f"constrained generation; achieved: forward FLOPs on real positions (prefill {prefill} + "
                 f"{con_tokens} decoded) / wall time; decoding steps are bound by memory, not FLOPs; {_where(roof)}"),
        BenchRow(f"real.decode_batch1.share_of_bandwidth.{model}", 1 / per_token, bound, ratio(1 / per_token, bound),
                 None, "tokens/s", f"greedy, one row, {DECODE_TOKENS} tokens after a {len(ids[0])}-token prompt (its "
                 f"prefill subtracted); bound: read rate / {shape_count.weight_bytes / 2**20:.0f} MiB of float32 "
                 f"weights per token (the tied embedding/head once); {_where(roof)}"),
    ]


PARTS = {"train": training_rows, "score": scoring_rows, "predict": prediction_rows, "generate": generation_rows}
