"""Batched greedy decoding that drops each row from the batch (and its KV cache) when it stops.

`model.generate` keeps every row of a batch until the longest one stops: a finished row is fed pad
tokens and still costs its share of every forward pass. When rows stop at different lengths (JSON
that closes early under a schema, a tuned model that answers in two tokens) that tail is most of
the work. `decode` runs the same steps as `generate`'s greedy loop (left-padded prefill with
position ids from the attention mask, the last position's logits in float32, the logits processors,
argmax) but selects the unfinished rows out of the batch, its cache and the processors' per-row
state after every step in which some row stopped.

Processors are called on the active rows only, so each must be able to follow row removal: a
`keep(rows)` method that keeps the state of those rows (positions in the current batch), in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class RowProcessor(Protocol):
    """A logits processor with per-row state that can drop rows between steps."""

    def __call__(self, input_ids: Any, scores: Any) -> Any: ...

    def keep(self, rows: list[int]) -> None: ...


def decode(
    model: Any, input_ids: Any, attention_mask: Any, *, max_new_tokens: int, stop_ids: Iterable[int],
    processors: Sequence[RowProcessor] = (),
) -> list[list[int]]:
    """Greedy decoding of a left-padded batch; returns each row's new tokens.

    A row's list ends with its stop token when it stopped, else it holds `max_new_tokens` tokens.
    Each row's tokens are those `model.generate(..., do_sample=False, logits_processor=processors)`
    gives it: a finished row only ever changes `generate`'s batch by the pad tokens it is fed, which
    the other rows never attend to.

    Args:
        model: a causal LM (a PEFT model too) taking `position_ids`, `past_key_values` and
            `logits_to_keep`.
        input_ids, attention_mask: the tokenised prompts, left-padded, on the model's device.
        stop_ids: token ids that end a row (the model's end-of-sequence ids).
        processors: applied in order to the active rows' float32 logits; see `RowProcessor`.
    """
    import torch

    stops = set(stop_ids)
    device = input_ids.device
    # As `generate`: positions count real tokens only (left padding does not shift them), and a
    # batch without padding runs without a mask.
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    mask = None if bool((attention_mask == 1).all()) else attention_mask
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    position = positions[:, -1:]
    cache = out.past_key_values
    seqs = input_ids  # the processors see prompt + tokens so far, as in `generate`
    active = list(range(input_ids.shape[0]))  # batch position -> original row
    new: list[list[int]] = [[] for _ in active]
    for step in range(max_new_tokens):
        scores = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        for processor in processors:
            scores = processor(seqs, scores)
        tokens = scores.argmax(-1)
        picked = tokens.tolist()
        for row, token in zip(active, picked, strict=True):
            new[row].append(token)
        if step == max_new_tokens - 1:
            break
        keep = [i for i, token in enumerate(picked) if token not in stops]
        if not keep:
            break
        seqs = torch.cat([seqs, tokens[:, None]], dim=-1)
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            seqs, tokens, position = seqs[index], tokens[index], position[index]
            mask = None if mask is None else mask[index]
            for processor in processors:
                processor.keep(keep)
            active = [active[i] for i in keep]
        position = position + 1
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position,
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
    return new
