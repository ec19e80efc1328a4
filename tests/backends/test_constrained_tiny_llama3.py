"""Constrained generation (Outlines' JSON-schema processor) over the 128,256-token Llama 3 vocabulary."""

from __future__ import annotations

import pytest

from backends import Sampling
from backends.models import TINY_LLAMA3
from backends.transformers_backend import TransformersBackend
from core.tasks import load_task

# tests/zoo/test_evaluator_generation.py decodes under the schema on every family, tiny-llama3 among them.
pytestmark = pytest.mark.slow


def test_every_constrained_output_parses_on_tiny_llama3(tiny_llama3):
    task = load_task("fin_sentiment")
    schema = task.output_schema()
    backend = TransformersBackend(TINY_LLAMA3, loaded=tiny_llama3, batch_size=4)
    prompts = [task.classify_messages(text, "en") for text in
               ("Profit rose 5%.", "Sales fell sharply in the quarter.", "The board met on Tuesday.")]
    out = backend.generate(prompts, schema, Sampling(max_new_tokens=16, temperature=0.0))
    assert len(out) == 3
    for completion in out:
        assert completion.error is None, completion
        assert completion.parsed is not None and completion.parsed["label"] in task.label_names
        assert completion.finish_reason == "stop"
    # Compiling the index over a 128k vocabulary is the one-off cost (measured: ~10 s on 2 busy cores).
    assert next(iter(backend.compile_seconds.values())) > 0
