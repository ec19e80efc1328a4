"""Our decoding loop (rows leave the batch and its KV cache as they stop, queued prompts take their
slots) against `model.generate`: the same tokens, token counts and finish reasons, greedy and
sampled, free and constrained, on both tiny models and under a LoRA adapter."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from backends import Sampling
from backends.models import TINY, TINY_LLAMA3
from backends.transformers_backend import TransformersBackend
from core.tasks import load_task

# Different lengths, so the batch is left-padded and a removed row takes padding columns with it.
PROMPTS = ["Headline: Nordvik Shipping posts record profit. Answer in JSON:",
           "Tweet: sales fell 3% this quarter. JSON:", "Label this: dividend cut. Output:", "x",
           [{"role": "user", "content": "Lợi nhuận quý 3 tăng mạnh so với cùng kỳ năm ngoái."}]]
SAMPLINGS = {"greedy": Sampling(temperature=0.0, max_new_tokens=40, seed=0),
             "sampled": Sampling(temperature=0.8, top_p=0.95, max_new_tokens=40, seed=3)}


@pytest.fixture(scope="module")
def backends(tiny, tiny_llama3) -> dict[str, TransformersBackend]:
    """One backend per tiny model for the module: a schema's index is compiled once per backend."""
    return {name: TransformersBackend(name, loaded=loaded, batch_size=len(PROMPTS))
            for name, loaded in ((TINY, tiny), (TINY_LLAMA3, tiny_llama3))}


def _summary(completions):
    return [(c.text, c.completion_tokens, c.finish_reason, c.prompt_tokens) for c in completions]


def _stop_midway(backend: TransformersBackend, sampling: Sampling, monkeypatch, prompts=PROMPTS, seeds=None) -> None:
    """Add a stop id that `generate` produces somewhere in most rows (the tiny models' free text never
    stops on its own), so rows stop at different steps and leave the batch."""
    import torch

    from backends import row_seeds
    from backends.processors import RowSampler

    sampler = [RowSampler(row_seeds(sampling, len(prompts), seeds), sampling.temperature, sampling.top_p)
               ] if sampling.temperature > 0 else []
    with torch.inference_mode():
        batch = backend._encode([backend.render(p) for p in prompts])
        rows = backend._hf_generate(batch, sampling.max_new_tokens, sampler)
    counts = Counter(t for row in rows for t in set(row[1:-1]))
    token = max(counts, key=lambda t: (counts[t] < len(rows), counts[t], -t))  # in some rows, not all if possible
    eos = backend.model.generation_config.eos_token_id
    monkeypatch.setattr(backend.model.generation_config, "eos_token_id",
                        [*(eos if isinstance(eos, list) else [eos]), token])


@pytest.mark.parametrize(("name", "how", "mode"), [
    *((TINY, how, mode) for how in SAMPLINGS for mode in ("free", "constrained")),
    (TINY_LLAMA3, "greedy", "constrained"),  # the real 128k vocabulary under the schema
    # the same loop over the 128k vocabulary, 5-8 s each on 2 cores: `pytest -m slow`
    *(pytest.param(TINY_LLAMA3, how, mode, marks=pytest.mark.slow)
      for how, mode in (("greedy", "free"), ("sampled", "free"), ("sampled", "constrained"))),
])
def test_same_tokens_as_model_generate(backends, name, mode, how, monkeypatch):
    backend = backends[name]
    sampling = SAMPLINGS[how]
    schema = load_task("fin_sentiment").generation_schema() if mode == "constrained" else None
    if schema is None:
        _stop_midway(backend, sampling, monkeypatch)
    ours = backend.generate(PROMPTS, schema, sampling)
    processor = backend.logits_processor(schema) if schema is not None else None
    theirs = backend._generate_free(PROMPTS, sampling, processor=processor, hf_generate=True)
    assert [(c.text, c.completion_tokens) for c in ours] == [(c.text, c.completion_tokens) for c in theirs]
    if schema is None:
        assert _summary(ours) == _summary(theirs)
        _assert_rows_left_early(ours, sampling)


def _assert_rows_left_early(completions, sampling: Sampling) -> None:
    """The comparison covered row removal: rows stopped before the budget, at different steps."""
    lengths = [c.completion_tokens for c in completions]
    assert min(lengths) < sampling.max_new_tokens and len(set(lengths)) > 1, lengths


def test_same_tokens_under_a_lora_adapter_and_small_batches(tiny, monkeypatch):
    """A PEFT model and batches of 2 (the last one a single row, no padding)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from backends.models import load_model

    base, tokenizer = load_model(TINY, device="cpu")  # fresh: the adapter is injected in place
    torch.manual_seed(3)
    tuned = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM")).eval()
    backend = TransformersBackend(TINY, loaded=(tuned, tokenizer), batch_size=2)
    sampling = SAMPLINGS["sampled"]
    _stop_midway(backend, sampling, monkeypatch)
    ours = backend.generate(PROMPTS, None, sampling)
    assert _summary(ours) == _summary(backend._generate_free(PROMPTS, sampling, hf_generate=True))
    _assert_rows_left_early(ours, sampling)


def test_a_row_keeps_its_tokens_whatever_stops_beside_it(backends):
    """Per-row randomness follows the row's seed only: alone or in a batch whose other rows leave
    early, a row samples the same tokens."""
    backend = backends[TINY]
    schema = load_task("fin_sentiment").generation_schema()
    sampling = SAMPLINGS["sampled"]
    seeds = [11, 12, 13, 14, 15]
    batched = backend.generate(PROMPTS, schema, sampling, seeds=seeds)
    alone = [backend.generate([p], schema, sampling, seeds=[s])[0] for p, s in zip(PROMPTS, seeds, strict=True)]
    assert _summary(batched) == _summary(alone)


# More prompts than slots, of very different lengths (a one-token prompt beside a long one), so
# queued prompts join a running batch whose cache is longer or shorter than their own.
QUEUED = [*PROMPTS, "Headline: " + "shares of Nordvik Shipping rose after the quarterly report. " * 6 + "JSON:",
          "y", [{"role": "user", "content": "Company beats estimates."}]]


class _Recorder:
    """A processor that records the batch: its size at each step and the rows that joined while others
    were still decoding. With `stop_after` ({prompt index: n}) it makes that prompt's row write `stop_id`
    after n tokens (so rows leave at known steps, whatever the random model writes); else no score changes."""

    def __init__(self, stop_after: dict[int, int] | None = None, stop_id: int | None = None) -> None:
        self.rows: list[int] = []
        self.sizes: list[int] = []
        self.joined_running: list[list[int]] = []
        self.stop_after, self.stop_id = stop_after or {}, stop_id
        self.steps: dict[int, int] = {}

    def __call__(self, input_ids, scores):
        assert input_ids.shape[0] == scores.shape[0] == len(self.rows)
        self.sizes.append(len(self.rows))
        for i, row in enumerate(self.rows):
            self.steps[row] = self.steps.get(row, 0) + 1
            if row in self.stop_after and self.steps[row] > self.stop_after[row]:
                scores[i] = float("-inf")
                scores[i, self.stop_id] = 0.0
        return scores

    def keep(self, rows: list[int]) -> None:
        self.rows = [self.rows[i] for i in rows]

    def add(self, rows: list[int]) -> None:
        if self.rows:
            self.joined_running.append(rows)
        self.rows += rows


@pytest.mark.parametrize(("name", "mode", "how"), [
    (TINY, "free", "greedy"), (TINY, "free", "sampled"), (TINY, "constrained", "greedy"),
    (TINY, "constrained", "sampled"), (TINY_LLAMA3, "free", "greedy"),
    # ~20 s each on 2 cores: the one-prompt baselines' 128k-vocabulary steps
    *(pytest.param(TINY_LLAMA3, mode, how, marks=pytest.mark.slow)
      for mode, how in (("free", "sampled"), ("constrained", "greedy"), ("constrained", "sampled"))),
])
def test_queued_prompts_get_the_tokens_model_generate_gives_each_alone(backends, name, mode, how, monkeypatch):
    """Continuous batching (3 slots, 8 prompts): each row's tokens, counts and finish reason are what
    `model.generate` gives that prompt alone, with its seed."""
    backend = backends[name]
    sampling = SAMPLINGS[how]
    task = load_task("fin_sentiment")
    schema = task.generation_schema() if mode == "constrained" else None
    if schema is not None:  # the task's bound: room for every JSON to close, each at its own step
        sampling = dataclasses.replace(sampling, max_new_tokens=task.max_new_tokens(with_input=True))
    seeds = [40 + i for i in range(len(QUEUED))]
    if schema is None:
        _stop_midway(backend, sampling, monkeypatch, QUEUED, seeds)
    monkeypatch.setattr(backend, "batch_size", 3)
    ours = backend.generate(QUEUED, schema, sampling, seeds=seeds)
    processor = backend.logits_processor(schema) if schema is not None else None
    alone = [backend._generate_free([p], sampling, processor=processor, seeds=[s], hf_generate=True)[0]
             for p, s in zip(QUEUED, seeds, strict=True)]
    assert [(c.text, c.completion_tokens) for c in ours] == [(c.text, c.completion_tokens) for c in alone]
    assert _summary(ours) == _summary(alone)
    _assert_rows_left_early(ours, sampling)
    if schema is not None:
        assert all(c.ok for c in ours), [c.error for c in ours]


def test_queued_prompts_join_a_running_batch_that_never_exceeds_its_slots(backends, monkeypatch):
    """The refill really happens mid-batch (not only once the batch is empty), in family order, and
    every prompt is decoded once."""
    import torch

    from backends.decode import _family_order, decode

    backend = backends[TINY]
    sampling = SAMPLINGS["greedy"]
    eos = backend.model.generation_config.eos_token_id
    stop = eos[0] if isinstance(eos, list) else eos
    ids = backend.tokenizer([backend.render(p) for p in QUEUED], add_special_tokens=False)["input_ids"]
    # The first two rows stop early (after 2 and 5 tokens), while the third still decodes: queued prompts
    # must take their slots then, not once the batch is empty.
    order = _family_order(ids)
    recorder = _Recorder(stop_after={order[0]: 2, order[1]: 5}, stop_id=stop)
    with torch.inference_mode():
        rows = decode(backend.model, ids, batch_size=3, pad_id=backend.tokenizer.pad_token_id,
                      max_new_tokens=sampling.max_new_tokens, stop_ids=eos, processors=[recorder])
    assert max(recorder.sizes) == 3
    assert recorder.joined_running, "no prompt joined a running batch"
    joined = [r for rows_ in recorder.joined_running for r in rows_]
    assert joined == order[3 : 3 + len(joined)]
    assert len(rows) == len(QUEUED) and all(rows)
    assert sum(recorder.sizes) == sum(len(r) for r in rows)  # one token per row per step, none lost


# Two instructions (two prompt families), each most of its prompts' tokens, interleaved.
INSTRUCTIONS = ["Read the financial headline below and answer with its sentiment as JSON. " * 4,
                "Đọc tiêu đề tài chính dưới đây và trả lời cảm xúc của nó dưới dạng JSON. " * 3]
FAMILIES = [INSTRUCTIONS[i % 2] + text for i, text in enumerate(
    ["Nordvik Shipping posts record profit.", "Cổ tức bị cắt giảm.", "Sales fell 3% this quarter.",
     "Lợi nhuận quý 3 tăng mạnh so với cùng kỳ năm ngoái.", "Dividend cut.", "Giá cổ phiếu giảm."])]


def test_family_order_groups_prompts_that_start_alike_shortest_first(backends):
    from backends.decode import _family_order

    tok = backends[TINY].tokenizer
    ids = tok(FAMILIES, add_special_tokens=False)["input_ids"]
    order = _family_order(ids)
    assert sorted(order) == list(range(len(FAMILIES)))
    first, second = order[:3], order[3:]
    assert {i % 2 for i in first} == {first[0] % 2} and {i % 2 for i in second} == {second[0] % 2}
    assert [len(ids[i]) for i in first] == sorted(len(ids[i]) for i in first)


def test_family_order_of_thousands_of_prompts_is_a_permutation_with_families_together():
    """A call with thousands of prompts (a validator's whole batch) is ordered in windows, without deep
    recursion, and each family's prompts still come out next to each other."""
    import random
    from itertools import pairwise

    from backends.decode import _family_order

    rng = random.Random(0)
    families = [[1, 2, 3] + [f] * 40 for f in (7, 8, 9)]
    prompts = [families[i % 3] + [rng.randrange(10, 99) for _ in range(rng.randrange(1, 30))] for i in range(3000)]
    order = _family_order(prompts)
    assert sorted(order) == list(range(3000))
    runs = sum(1 for a, b in pairwise(order) if a % 3 != b % 3)
    assert runs == 2  # three families, each one contiguous run


@pytest.mark.parametrize("mode", ["free", "constrained"])
def test_a_shared_instruction_runs_once_per_prefill_and_every_row_keeps_its_tokens(backends, mode, monkeypatch):
    """Prompts that share a long instruction: each prefill runs it once (the model sees far fewer prompt
    positions than the prompts hold), and each row's tokens are what `model.generate` gives it alone."""
    backend = backends[TINY]
    sampling = SAMPLINGS["greedy"]
    schema = load_task("fin_sentiment").generation_schema() if mode == "constrained" else None
    if schema is None:
        _stop_midway(backend, sampling, monkeypatch, FAMILIES)
    monkeypatch.setattr(backend, "batch_size", 3)
    positions: list[int] = []
    hook = backend.model.register_forward_pre_hook(
        lambda module, args, kwargs: positions.append(kwargs["input_ids"].numel()), with_kwargs=True)
    try:
        ours = backend.generate(FAMILIES, schema, sampling)
    finally:
        hook.remove()
    prompt_tokens = sum(c.prompt_tokens for c in ours)
    steps = sum(c.completion_tokens for c in ours)
    assert sum(positions) < 0.6 * prompt_tokens + steps, (sum(positions), prompt_tokens, steps)
    processor = backend.logits_processor(schema) if schema is not None else None
    alone = [backend._generate_free([p], sampling, processor=processor, hf_generate=True)[0] for p in FAMILIES]
    # (the constrained path marks an unclosed JSON as an error; the raw decoding beside it says "length")
    assert [(c.text, c.completion_tokens, c.prompt_tokens) for c in ours] == \
        [(c.text, c.completion_tokens, c.prompt_tokens) for c in alone]
