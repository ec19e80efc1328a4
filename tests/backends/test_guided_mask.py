"""GuidedMask (our batched JSON-schema constraint) against Outlines' own logits processor."""

from __future__ import annotations

import json

import pytest

from backends import Sampling
from core.tasks import load_task

PROMPTS = ["Headline: Nordvik Shipping posts record profit. Answer in JSON:",
           "Tweet: sales fell 3% this quarter. JSON:", "Label this: dividend cut. Output:"]


@pytest.fixture(scope="module")
def backend():
    from backends.transformers_backend import TransformersBackend

    return TransformersBackend("tiny", device="cpu", batch_size=3)


def test_same_tokens_as_outlines_processor_and_every_output_parses(backend):
    """The same seeds give the same text through our mask as through Outlines' processor."""
    import outlines

    schema = load_task("fin_sentiment").generation_schema()
    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=160, seed=3)
    ours = backend.generate(PROMPTS, schema, sampling)
    generator = outlines.Generator(backend._outlines_model, outlines.types.JsonSchema(
        json.dumps(schema.model_json_schema()), whitespace_pattern=""))
    theirs = backend._generate_free(PROMPTS, sampling, processor=generator.logits_processor)
    assert [c.text for c in ours] == [c.text for c in theirs]
    assert [c.completion_tokens for c in ours] == [c.completion_tokens for c in theirs]
    assert any(c.ok for c in ours)
    for c in ours:
        assert c.ok or c.finish_reason == "error"


def test_masks_are_reused_across_calls(backend):
    """A second call with the schema builds no new mask (states seen before), and counts its rows."""
    schema = load_task("fin_sentiment").generation_schema()
    sampling = Sampling(temperature=0.0, max_new_tokens=40, seed=0)
    mask = backend.logits_processor(schema)
    backend.generate(PROMPTS, schema, sampling)
    known, rows = len(mask._masks), mask.masked_rows
    backend.generate(PROMPTS, schema, sampling)
    assert len(mask._masks) == known
    assert mask.masked_rows > rows


def test_other_stop_ids_are_blocked_and_pads_after_a_stop_do_not_raise(backend):
    """<|end_of_text|> (a stop id generate honours, not the guide's EOS) is never allowed, and a pad
    token fed to a row's guide (what generate sends once a row stopped) leaves the guide as it is."""
    import torch

    schema = load_task("fin_sentiment").generation_schema()
    mask = backend.logits_processor(schema)
    eos = backend.model.generation_config.eos_token_id
    others = set(eos if isinstance(eos, list) else [eos]) - {backend.tokenizer.eos_token_id}
    assert set(mask.blocked) == others
    vocab = backend.model.config.vocab_size
    mask.reset()
    ids = torch.zeros((2, 3), dtype=torch.long)
    first = mask(ids, torch.zeros((2, vocab)))
    allowed = (first[0] > float("-inf")).nonzero().view(-1).tolist()
    assert allowed and not others & set(allowed)
    ids = torch.tensor([[0, 0, allowed[0]], [0, 0, backend.tokenizer.pad_token_id]])
    second = mask(ids, torch.zeros((2, vocab)))
    assert torch.equal(second[1] > float("-inf"), first[1] > float("-inf"))  # the pad row did not move
