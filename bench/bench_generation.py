"""Generation on the tiny model, side by side in one process.

    python -m bench generation

Constrained vs unconstrained tokens/s through our decoding loop (target: constrained >= 0.9 of
unconstrained), that loop vs `model.generate`, mask time per token vs Outlines' processor, schema
compile time, batched vs one prompt at a time.
What each row compares: docs/benchmarks.md#design-benchbench_generationpy
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from backends import Sampling
from backends.models import REPO_ROOT
from backends.transformers_backend import TransformersBackend
from bench import BenchRow, ratio
from core.records import Record
from core.tasks import load_task
from generator.prompts import PlanConfig, Planner
from generator.seeds import load_seeds

N_PROMPTS = 64  # queued prompts for the constrained vs free rows: 8x the batch slots
BATCH = 8


def seed_plans(task, n: int) -> list:
    """The first `n` plans of our Planner over the bundled English fin_sentiment seeds (run seed 0)."""
    rows = [json.loads(line) for line in (REPO_ROOT / "data/samples/fin_sentiment/en.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seeds.jsonl"
        path.write_text("".join(Record.new(task=task.name, lang="en", text=r["text"],
                                           labels={"label": task.normalise_label(r["label"])}).model_dump_json() + "\n"
                                for r in rows))
        planner = Planner(task, "en", load_seeds(path, task, "en"), PlanConfig(seed=0))
        return [planner.plan(i) for i in range(n)]


def _prompts(task):
    return [plan.messages for plan in seed_plans(task, N_PROMPTS)]


class _StopAt:
    """Free generation with each row stopped where its constrained row stopped: from token
    `stop_after[prompt]` on, only `stop_id` is allowed (None: run to the budget). Follows `decode`'s
    batch (`keep`/`add`) like the schema constraint does."""

    def __init__(self, stop_after: list[int | None], stop_id: int):
        self.stop_after, self.stop_id = stop_after, stop_id
        self.reset()

    def reset(self) -> None:
        self.prompts: list[int] = []  # the prompt of each row of the current batch
        self.emitted: list[int] = []

    def keep(self, rows: list[int]) -> None:
        self.prompts = [self.prompts[i] for i in rows]
        self.emitted = [self.emitted[i] for i in rows]

    def add(self, rows: list[int]) -> None:
        self.prompts += rows
        self.emitted += [0] * len(rows)

    def __call__(self, input_ids, scores):
        for row, prompt in enumerate(self.prompts):
            limit = self.stop_after[prompt]
            if limit is not None and self.emitted[row] >= limit:
                scores[row, :] = float("-inf")
                scores[row, self.stop_id] = 0.0
            self.emitted[row] += 1
        return scores


def _stopped(completion) -> bool:
    """Whether a constrained row ended on a stop token (its JSON closed) rather than at the budget."""
    return completion.finish_reason == "stop" or bool(
        completion.error and "hit max_new_tokens" not in completion.error)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


class _Timed:
    """Outlines' own logits processor with a stopwatch around it (the baseline's mask time)."""

    def __init__(self, processor):
        self.processor, self.seconds, self.rows = processor, 0.0, 0

    def reset(self) -> None:
        self.processor.reset()

    def __call__(self, input_ids, scores):
        start = time.perf_counter()
        out = self.processor(input_ids, scores)
        self.seconds += time.perf_counter() - start
        self.rows += scores.shape[0]
        return out


def run() -> list[BenchRow]:
    import outlines

    task = load_task("fin_sentiment")
    schema = task.generation_schema()
    queued = _prompts(task)
    prompts = queued[:BATCH]
    backend = TransformersBackend("tiny", device="cpu", batch_size=BATCH)
    passes = [0]  # model forward passes (prefills + decoding steps)
    backend.model.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))

    _, first = _timed(lambda: backend.logits_processor(schema))
    _, second = _timed(lambda: backend.logits_processor(schema))
    mask = backend.logits_processor(schema)

    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=96, seed=0)
    backend.generate(prompts[:2], None, Sampling(max_new_tokens=4))  # warm-up
    _, warm_up = _timed(lambda: backend.generate(prompts[:2], schema, Sampling(max_new_tokens=4)))
    mask.mask_seconds, mask.masked_rows = 0.0, 0
    # Alternated, best of two each: the machine is shared, and load drifts between back-to-back runs.
    constrained = backend.generate(queued, schema, sampling)
    stop_id = backend.tokenizer.eos_token_id  # what a closed JSON stops on
    same_length = _StopAt([c.completion_tokens - 1 if _stopped(c) else None for c in constrained], stop_id)
    t_con = t_free = t_budget = float("inf")
    for _ in range(2):
        passes[0] = 0
        constrained, t = _timed(lambda: backend.generate(queued, schema, sampling))
        t_con, con_passes = min(t_con, t), passes[0]
        passes[0] = 0
        free, t = _timed(lambda: backend._generate_free(queued, sampling, processor=same_length))
        t_free, free_passes = min(t_free, t), passes[0]
        passes[0] = 0
        to_budget, t = _timed(lambda: backend.generate(queued, None, sampling))
        t_budget, budget_passes = min(t_budget, t), passes[0]
    hf, t_hf = _timed(lambda: backend._generate_free(queued, sampling, processor=mask, hf_generate=True))
    con_tokens, free_tokens = sum(c.completion_tokens for c in constrained), sum(c.completion_tokens for c in free)
    budget_tokens = sum(c.completion_tokens for c in to_budget)
    con_tps, free_tps, budget_tps = con_tokens / t_con, free_tokens / t_free, budget_tokens / t_budget
    same_lengths = [c.completion_tokens for c in constrained] == [c.completion_tokens for c in free]
    hf_tps = sum(c.completion_tokens for c in hf) / t_hf
    same_as_hf = [c.text for c in constrained] == [c.text for c in hf]
    # Share of `generate`'s row-steps that produce a token: a row that closed its JSON early still
    # costs a forward pass per step there until the longest row of its batch stops (our loop drops it
    # and gives its slot to a queued prompt).
    busy = con_tokens / sum(len(hf[i : i + BATCH]) * max(c.completion_tokens for c in hf[i : i + BATCH])
                            for i in range(0, len(hf), BATCH))
    # Where constrained loses tokens per pass: rows of different lengths; once the queue is empty the
    # last rows finish in a shrinking batch (free rows all run the whole budget, so its batch stays full).
    lengths = sorted(c.completion_tokens for c in constrained)
    ours_us = mask.mask_seconds / mask.masked_rows * 1e6

    # Baseline for the mask: Outlines' own processor (what `outlines.Generator` runs), same prompts.
    generator = outlines.Generator(backend._outlines_model, outlines.types.JsonSchema(
        json.dumps(schema.model_json_schema()), whitespace_pattern=""))
    timed = _Timed(generator.logits_processor)
    backend._generate_free(prompts[:2], Sampling(max_new_tokens=4), processor=timed)  # its torch.compile
    timed.seconds, timed.rows = 0.0, 0
    theirs = backend._generate_free(prompts, sampling, processor=timed)
    theirs_us = timed.seconds / timed.rows * 1e6
    same = [c.text for c in constrained[:BATCH]] == [c.text for c in theirs]  # a row's tokens: its own

    full = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=384, seed=0)
    batched, t_batch = _timed(lambda: backend.generate(prompts, schema, full))
    backend.batch_size = 1
    single, t_single = _timed(lambda: backend.generate(prompts, schema, full))
    parsed = sum(c.ok for c in batched) + sum(c.ok for c in single)
    n = len(prompts)
    return [
        BenchRow("generation.constrained_vs_free_tokens_per_s", con_tps, free_tps, ratio(con_tps, free_tps), 0.9,
                 "tokens/s", f"baseline: free generation of the same rows to the same lengths (same decoding loop, "
                 f"prompts, sampling; each free row stopped where its constrained row stopped: lengths "
                 f"{'identical' if same_lengths else 'DIFFER'}), so the ratio is the grammar's cost per token; "
                 f"{N_PROMPTS} prompts through {BATCH} batch slots, continuous batching; constrained {con_tokens} "
                 f"tokens in {con_passes} forward passes ({t_con / con_passes * 1e3:.1f} ms/pass), free "
                 f"{free_tokens} in {free_passes} ({t_free / free_passes * 1e3:.1f} ms/pass)"),
        BenchRow("generation.constrained_vs_free_to_budget_tokens_per_s", con_tps, budget_tps,
                 ratio(con_tps, budget_tps), None, "tokens/s",
                 f"baseline: free generation to the budget (the tiny model never stops on its own: every row runs "
                 f"{sampling.max_new_tokens} tokens); constrained rows stop when their JSON closes (lengths "
                 f"{lengths[0]}-{lengths[-1]}, median {lengths[len(lengths) // 2]}), so fewer rows share the "
                 f"last passes: constrained {con_tokens / con_passes:.2f} tokens/pass, free to budget "
                 f"{budget_tokens / budget_passes:.2f} ({budget_tokens} in {budget_passes}); a forward pass of "
                 f"the tiny model costs about the same with 8 rows or fewer, so tokens/s follows tokens/pass"),
        BenchRow("generation.drop_finished_rows_vs_hf_generate_tokens_per_s", con_tps, hf_tps,
                 ratio(con_tps, hf_tps), None, "tokens/s",
                 f"constrained, same {N_PROMPTS} prompts and GuidedMask; baseline: model.generate in fixed batches "
                 f"of {BATCH} (every row until the longest of its batch stops: {busy:.0%} of its row-steps produce "
                 f"a token); tokens "
                 f"{'identical' if same_as_hf else 'DIFFER'}"),
        BenchRow("generation.mask_us_per_token_vs_outlines_processor", ours_us, theirs_us,
                 ratio(ours_us, theirs_us, False), 1.0, "us/token",
                 f"baseline: Outlines' own logits processor (outlines.Generator) in the same generate; ours: "
                 f"GuidedMask (masks cached per guide state, one masked_fill per batch); outputs "
                 f"{'identical' if same else 'DIFFER'}; published: outlines-core's torch kernel ~23 us per "
                 f"apply on a 128k vocabulary (kernels/torch.py), llguidance ~100 us CPU per token per sequence"),
        BenchRow("generation.schema_compile_cached_vs_first", second, first, ratio(second, first, False), None,
                 "s", f"first compile {first:.3f} s, cached {second * 1e6:.0f} us; first constrained call "
                 f"{warm_up:.1f} s"),
        BenchRow("generation.batched_vs_one_at_a_time_samples_per_s", n / t_batch, n / t_single,
                 ratio(n / t_batch, n / t_single), None, "samples/s",
                 f"baseline: one prompt per generate call; constrained, {parsed}/{2 * n} parsed"),
    ]
