"""GuidedMask (our batched JSON-schema constraint) against Outlines' own logits processor."""

from __future__ import annotations

import json

import pytest

from core.tasks import load_task
from generator.backends import Sampling

PROMPTS = ["Headline: Nordvik Shipping posts record profit. Answer in JSON:",
           "Tweet: sales fell 3% this quarter. JSON:", "Label this: dividend cut. Output:"]


@pytest.fixture(scope="module")
def backend():
    from generator.backends.transformers_backend import TransformersBackend

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
