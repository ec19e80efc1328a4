"""bench/flops.py counts what the model really ran: real positions (padding apart), attention pairs through
a KV cache, the LM head's rows; the real-weights shares divide by these counts."""

from __future__ import annotations

import torch

from backends.models import TINY, load_model
from bench.flops import Count
from trainer.shapes import model_shape


def test_a_padded_prefill_then_a_cached_step_are_counted_exactly():
    model, _ = load_model(TINY, device="cpu")
    count = Count(model_shape(TINY))
    ids = torch.tensor([[0, 0, 5, 6, 7], [5, 6, 7, 8, 9]])  # 3 real tokens left-padded to 5, and 5
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad(), count.watching(model):
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
        step_mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=1)
        model(input_ids=torch.tensor([[8], [10]]), attention_mask=step_mask, cache=out.cache,
              use_cache=True, logits_to_keep=1)
    assert (count.calls, count.positions, count.computed) == (2, 3 + 5 + 2, 10 + 2)
    # Each real query sees the real keys up to itself: 1+2+3 and 1+..+5 in the prefill, then 4 and 6.
    assert count.pairs == 6 + 15 + 4 + 6
    assert count.head_rows == 2 + 2
    shape = count.shape
    expected = (2 * shape.linear_params() * 10 + 4 * shape.q_dim * shape.layers * 31
                + 2 * shape.hidden * shape.vocab * 4)
    assert count.inference_flops() == expected


def test_a_cached_step_without_a_mask_sees_the_cache():
    model, _ = load_model(TINY, device="cpu")
    count = Count(model_shape(TINY))
    with torch.no_grad(), count.watching(model):
        out = model(input_ids=torch.tensor([[5, 6, 7]]), use_cache=True, logits_to_keep=1)
        model(input_ids=torch.tensor([[8]]), cache=out.cache, use_cache=True, logits_to_keep=1)
    assert count.positions == 4 and count.pairs == (1 + 2 + 3) + 4  # the step's query sees 3 cached keys + itself
