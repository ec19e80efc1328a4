"""Generation on the tiny model, side by side in one process:

- constrained (Outlines JSON schema) vs unconstrained tokens/s for the same prompts and token budget
  (target: constrained >= 0.9 of unconstrained);
- schema compile time: first call vs cached second call (reported; the cache makes repeats free),
  and the one-off warm-up of the first constrained call;
- batched (one call of 8 prompts) vs one prompt at a time, constrained samples/s.
"""

from __future__ import annotations

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


def run() -> list[BenchRow]:
    from generator.backends.transformers_backend import TransformersBackend

    task = load_task("fin_sentiment")
    schema = task.generation_schema()
    prompts = _prompts(task)
    backend = TransformersBackend("tiny", device="cpu", batch_size=N_PROMPTS)

    _, first = _timed(lambda: backend.logits_processor(schema))
    _, second = _timed(lambda: backend.logits_processor(schema))

    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=96, seed=0)
    # Warm-up of both paths: Outlines' masking kernel is torch.compile'd on its first call (once per process).
    backend.generate(prompts[:2], None, Sampling(max_new_tokens=4))
    _, warm_up = _timed(lambda: backend.generate(prompts[:2], schema, Sampling(max_new_tokens=4)))
    constrained, t_con = _timed(lambda: backend.generate(prompts, schema, sampling))
    free, t_free = _timed(lambda: backend.generate(prompts, None, sampling))
    con_tps = sum(c.completion_tokens for c in constrained) / t_con
    free_tps = sum(c.completion_tokens for c in free) / t_free

    full = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=384, seed=0)
    batched, t_batch = _timed(lambda: backend.generate(prompts, schema, full))
    backend.batch_size = 1
    single, t_single = _timed(lambda: backend.generate(prompts, schema, full))
    parsed = sum(c.ok for c in batched) + sum(c.ok for c in single)
    return [
        BenchRow("generation.constrained_vs_free_tokens_per_s", con_tps, free_tps, ratio(con_tps, free_tps), 0.9,
                 "tokens/s", f"{N_PROMPTS} prompts, same sampling and budget"),
        BenchRow("generation.schema_compile_cached_vs_first", second, first, ratio(second, first, False), None,
                 "s", f"first compile {first:.3f} s, cached {second * 1e6:.0f} us; first constrained call "
                 f"(kernel torch.compile) {warm_up:.1f} s"),
        BenchRow("generation.batched_vs_one_at_a_time_samples_per_s", N_PROMPTS / t_batch, N_PROMPTS / t_single,
                 ratio(N_PROMPTS / t_batch, N_PROMPTS / t_single), None, "samples/s",
                 f"constrained, {parsed}/{2 * N_PROMPTS} parsed"),
    ]
