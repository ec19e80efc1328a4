"""Generation on the tiny model, side by side in one process:

- constrained (Outlines-core JSON-schema guides, `GuidedMask`) vs unconstrained tokens/s for the same
  prompts and token budget (target: constrained >= 0.9 of unconstrained), both through our decoding
  loop (generator/backends/decode.py), where a row leaves the batch when it stops;
- that loop vs `model.generate` (every row until the longest one stops), constrained, same tokens;
- mask time per token: `GuidedMask` vs Outlines' own logits processor, same prompts, same outputs;
- schema compile time: first call vs cached second call (reported; the cache makes repeats free),
  and the one-off warm-up of the first constrained call;
- batched (one call of 8 prompts) vs one prompt at a time, constrained samples/s.
"""

from __future__ import annotations

import json
import time

from bench import BenchRow, ratio
from core.tasks import load_task
from generator.backends import Sampling
from generator.prompts import PlanConfig, Planner
from generator.seeds import load_seeds

N_PROMPTS = 8


def _prompts(task):
    import json
    import tempfile
    from pathlib import Path

    from core.models import REPO_ROOT
    from core.records import Record

    rows = [json.loads(line) for line in (REPO_ROOT / "data/samples/fin_sentiment/en.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seeds.jsonl"
        path.write_text("".join(Record.new(task=task.name, lang="en", text=r["text"],
                                           labels={"label": task.normalise_label(r["label"])}).model_dump_json() + "\n"
                                for r in rows))
        planner = Planner(task, "en", load_seeds(path, task, "en"), PlanConfig(seed=0))
    return [planner.plan(i).messages for i in range(N_PROMPTS)]


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

    from generator.backends.transformers_backend import TransformersBackend

    task = load_task("fin_sentiment")
    schema = task.generation_schema()
    prompts = _prompts(task)
    backend = TransformersBackend("tiny", device="cpu", batch_size=N_PROMPTS)

    _, first = _timed(lambda: backend.logits_processor(schema))
    _, second = _timed(lambda: backend.logits_processor(schema))
    mask = backend.logits_processor(schema)

    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=96, seed=0)
    backend.generate(prompts[:2], None, Sampling(max_new_tokens=4))  # warm-up
    _, warm_up = _timed(lambda: backend.generate(prompts[:2], schema, Sampling(max_new_tokens=4)))
    mask.mask_seconds, mask.masked_rows = 0.0, 0
    # Alternated, best of three each: the machine is shared, and load drifts between back-to-back runs.
    t_con = t_free = t_hf = float("inf")
    for _ in range(3):
        constrained, t = _timed(lambda: backend.generate(prompts, schema, sampling))
        t_con = min(t_con, t)
        free, t = _timed(lambda: backend.generate(prompts, None, sampling))
        t_free = min(t_free, t)
        hf, t = _timed(lambda: backend._generate_free(prompts, sampling, processor=mask, hf_generate=True))
        t_hf = min(t_hf, t)
    con_tokens = sum(c.completion_tokens for c in constrained)
    con_tps, free_tps = con_tokens / t_con, sum(c.completion_tokens for c in free) / t_free
    hf_tps = sum(c.completion_tokens for c in hf) / t_hf
    same_as_hf = [c.text for c in constrained] == [c.text for c in hf]
    # Share of `generate`'s row-steps that produce a token: a row that closed its JSON early still
    # costs a forward pass per step there until the longest row stops (our loop drops it).
    con_steps, free_steps = max(c.completion_tokens for c in constrained), max(c.completion_tokens for c in free)
    busy = con_tokens / (N_PROMPTS * con_steps)
    ours_us = mask.mask_seconds / mask.masked_rows * 1e6

    # Baseline for the mask: Outlines' own processor (what `outlines.Generator` runs), same prompts.
    generator = outlines.Generator(backend._outlines_model, outlines.types.JsonSchema(
        json.dumps(schema.model_json_schema()), whitespace_pattern=""))
    timed = _Timed(generator.logits_processor)
    backend._generate_free(prompts[:2], Sampling(max_new_tokens=4), processor=timed)  # its torch.compile
    timed.seconds, timed.rows = 0.0, 0
    theirs = backend._generate_free(prompts, sampling, processor=timed)
    theirs_us = timed.seconds / timed.rows * 1e6
    same = [c.text for c in constrained] == [c.text for c in theirs]

    full = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=384, seed=0)
    batched, t_batch = _timed(lambda: backend.generate(prompts, schema, full))
    backend.batch_size = 1
    single, t_single = _timed(lambda: backend.generate(prompts, schema, full))
    parsed = sum(c.ok for c in batched) + sum(c.ok for c in single)
    return [
        BenchRow("generation.constrained_vs_free_tokens_per_s", con_tps, free_tps, ratio(con_tps, free_tps), 0.9,
                 "tokens/s", f"baseline: free generation (same decoding loop, prompts, sampling, budget); "
                 f"{N_PROMPTS} prompts; a row leaves the batch when it stops; constrained {con_tokens} tokens in "
                 f"{con_steps} steps ({t_con / con_steps * 1e3:.1f} ms/step), free "
                 f"{sum(c.completion_tokens for c in free)} in {free_steps} ({t_free / free_steps * 1e3:.1f} ms/step)"),
        BenchRow("generation.drop_finished_rows_vs_hf_generate_tokens_per_s", con_tps, hf_tps,
                 ratio(con_tps, hf_tps), None, "tokens/s",
                 f"constrained, same prompts and GuidedMask; baseline: model.generate (every row until the longest "
                 f"stops: {busy:.0%} of its row-steps produce a token); tokens "
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
        BenchRow("generation.batched_vs_one_at_a_time_samples_per_s", N_PROMPTS / t_batch, N_PROMPTS / t_single,
                 ratio(N_PROMPTS / t_batch, N_PROMPTS / t_single), None, "samples/s",
                 f"baseline: one prompt per generate call; constrained, {parsed}/{2 * N_PROMPTS} parsed"),
    ]
