"""Batched greedy decoding with continuous batching: a row leaves the batch (and its KV cache) when
it stops, and queued prompts take the freed slots.

    new_tokens = decode(model, prompt_ids, batch_size=8, pad_id=tok.pad_token_id, max_new_tokens=96,
                        stop_ids=[tok.eos_token_id], processors=[mask])   # one list of new tokens per prompt

Each row gets the tokens greedy `model.generate` gives it. Processors are called on the active rows
only, so each must follow the batch: `keep(rows)` and `add(rows)` (`RowProcessor`). Prefill is where
the time goes on a real model (a task's instruction is most of each prompt), so prompts run in family
order (those that start alike together, shorter first) and the tokens a prefill's prompts share run once.
Design: docs/generation.md#design-backendsdecodepy
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from backends.prefix import PASS_OVERHEAD, prefix_groups, shared_prefix


class RowProcessor(Protocol):
    """A logits processor with per-row state that follows rows leaving and joining the batch."""

    def __call__(self, input_ids: Any, scores: Any) -> Any: ...

    def keep(self, rows: list[int]) -> None: ...

    def add(self, rows: list[int]) -> None: ...


def _mergeable(cache: Any) -> bool:
    """Whether the cache's per-layer tensors can be concatenated along the batch: plain full-attention
    `DynamicLayer`s (a sliding-window or linear-attention layer keeps state that padding would break)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _left_pad(tensor: Any, width: int, dim: int, value: float = 0) -> Any:
    """`tensor` left-padded with `value` to `width` along `dim`."""
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_full(shape, value), tensor], dim=dim)


def _merge_caches(cache: Any, extra: Any) -> None:
    """Append `extra`'s rows to `cache` (in place), left-padding the shorter one's sequence dim with
    zeros: the padded positions are masked, so their keys and values are never attended to."""
    import torch

    for layer, other in zip(cache.layers, extra.layers, strict=True):
        width = max(layer.keys.shape[-2], other.keys.shape[-2])
        layer.keys = torch.cat([_left_pad(layer.keys, width, -2), _left_pad(other.keys, width, -2)], dim=0)
        layer.values = torch.cat([_left_pad(layer.values, width, -2), _left_pad(other.values, width, -2)], dim=0)


def _trim(cache: Any, mask: Any) -> int:
    """Drop the cache's leading columns that are padding in every row (the rows with the longest
    history have left): keeps the cache from growing with the longest prompt ever seen. Returns how
    many columns went, for the caller to drop from the mask and token history too."""
    used = mask.any(0).nonzero()
    first = int(used[0]) if used.numel() else 0
    if first:
        for layer in cache.layers:
            layer.keys = layer.keys[..., first:, :]
            layer.values = layer.values[..., first:, :]
    return first


# Prompts grouped into families at a time: `prefix_groups` splits recursively, in quadratic time.
FAMILY_WINDOW = 256


def _family_order(prompts: Sequence[Sequence[int]]) -> list[int]:
    """Prompt indices with the prompts that start alike together (`prefix_groups`: one group per
    instruction, say), shortest first within a group: a refill then shares its group's prefix and
    pads little. Sorted by their tokens first, so a family stays together across windows."""
    by_tokens = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    order: list[int] = []
    for start in range(0, len(by_tokens), FAMILY_WINDOW):
        window = by_tokens[start : start + FAMILY_WINDOW]
        for group in prefix_groups([list(prompts[i]) for i in window]):
            order += sorted((window[j] for j in group), key=lambda i: len(prompts[i]))
    return order


def prefill(model: Any, rows: list[Sequence[int]], *, pad_id: int, shared: int) -> tuple[Any, Any, Any, Any]:
    """One forward pass over new prompts: (token ids, attention mask, position ids, model output), the
    prompts left-padded to one width. Decoding's prefill here, and scoring's (`TransformersBackend.score`).

    The first `shared` tokens (every row starts with them) run once, as one row, and their KV cache is
    repeated for every row; only the rest of each prompt runs batched, left-padded after the shared
    part. Positions count real tokens only, as in `generate`; a batch without padding runs without a mask.
    """
    import torch

    device = next(model.parameters()).device
    rests = [list(row[shared:]) for row in rows]
    width = max(len(rest) for rest in rests)
    ids = torch.tensor([[pad_id] * (width - len(rest)) + rest for rest in rests], device=device)
    fresh = torch.tensor([[0] * (width - len(rest)) + [1] * len(rest) for rest in rests], device=device)
    positions = shared + (fresh.cumsum(-1) - 1).masked_fill(fresh == 0, 0)
    cache = None
    if shared:
        prefix = torch.tensor([list(rows[0][:shared])], device=device)
        cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(len(rows))
        ids = torch.cat([prefix.expand(len(rows), -1), ids], dim=1)
        fresh = torch.cat([fresh.new_ones(len(rows), shared), fresh], dim=1)
    out = model(input_ids=ids[:, shared:], attention_mask=None if bool(fresh.all()) else fresh,
                position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
    return ids, fresh, positions, out


def decode(
    model: Any, prompts: Sequence[Sequence[int]], *, batch_size: int, pad_id: int, max_new_tokens: int,
    stop_ids: Iterable[int], processors: Sequence[RowProcessor] = (), refill_at: int | None = None,
    share_prefixes: bool = True,
) -> list[list[int]]:
    """Greedy decoding of tokenised prompts, at most `batch_size` rows at a time; each prompt's new tokens.

    A row's list ends with its stop token when it stopped, else it holds `max_new_tokens` tokens.
    Each row's tokens are those `model.generate(..., do_sample=False, logits_processor=processors)`
    gives it: rows only ever share a batch through padding, which no row attends to.

    Prompts are taken in `_family_order`; a refill prefills each family among its prompts on its own
    (`prefix.prefix_groups`), the tokens they share once (`prefill`), where that saves more than a
    forward pass costs and the cache can be merged.

    Refill policy: after a step in which rows stopped, the next queued prompts are prefilled (as one
    left-padded batch, positions from their own masks) into the free slots when at least `refill_at`
    slots are free (default: a quarter of `batch_size`, at least 1), when the queue holds no more
    prompts than the free slots, or when no row is left; so prefill is paid for a few prompts at a
    time, not one by one. Their KV cache joins the running one along the batch, the shorter side
    left-padded (zeros in the cache, zeros in the mask); columns left that are padding in every row
    are dropped. A model whose cache cannot be merged that way (sliding-window or linear-attention
    layers) refills only once the batch is empty: fixed batches.

    Args:
        model: a causal LM (a PEFT model too) taking `position_ids`, `cache` and
            `logits_to_keep`.
        prompts: each prompt's token ids (without padding).
        pad_id: the token id that left-pads shorter prompts (masked out).
        stop_ids: token ids that end a row (the model's end-of-sequence ids).
        processors: applied in order to the active rows' float32 logits; see `RowProcessor`.
        share_prefixes: False takes the prompts in the given order and prefills each refill in one plain
            pass (what `decode` did before; `bench real`'s baseline).
    """
    import torch

    with torch.inference_mode():  # whoever calls: no autograd graph over a whole decoding's cache
        return _decode(model, prompts, batch_size=batch_size, pad_id=pad_id, max_new_tokens=max_new_tokens,
                       stop_ids=stop_ids, processors=processors, refill_at=refill_at, share_prefixes=share_prefixes)


def _decode(
    model: Any, prompts: Sequence[Sequence[int]], *, batch_size: int, pad_id: int, max_new_tokens: int,
    stop_ids: Iterable[int], processors: Sequence[RowProcessor], refill_at: int | None, share_prefixes: bool,
) -> list[list[int]]:
    """`decode`'s loop, under inference mode."""
    import torch

    if not prompts:
        return []
    stops = set(stop_ids)
    device = next(model.parameters()).device
    refill_at = max(1, batch_size // 4) if refill_at is None else refill_at
    # A one-token pass tells whether this model's cache can be merged (and so share a prefix).
    mergeable = _mergeable(model(input_ids=torch.tensor([list(prompts[0][:1])], device=device), use_cache=True,
                                 logits_to_keep=1).cache)
    queue = deque(_family_order(prompts) if share_prefixes else range(len(prompts)))
    new: list[list[int]] = [[] for _ in prompts]
    active: list[int] = []  # batch position -> prompt index
    cache: Any = None
    mask = seqs = position = logits = None
    while True:
        free = batch_size - len(active)
        if queue and free and (not active or (mergeable and (free >= refill_at or len(queue) <= free))):
            taken = [queue.popleft() for _ in range(min(free, len(queue)))]
            # Each family of the refill (prompts that start alike) is prefilled on its own, the tokens its
            # prompts share once; a cache that cannot be merged takes the refill in one plain pass.
            sharing = mergeable and share_prefixes
            groups = prefix_groups([list(prompts[r]) for r in taken]) if sharing else [list(range(len(taken)))]
            for group in groups:
                rows = [taken[i] for i in group]
                shared = shared_prefix([list(prompts[r]) for r in rows]) if sharing else 0
                if shared * (len(rows) - 1) <= PASS_OVERHEAD:  # not worth a pass of its own
                    shared = 0
                ids, fresh, positions, out = prefill(model, [prompts[r] for r in rows], pad_id=pad_id, shared=shared)
                extra = out.logits[:, -1].to(copy=True, dtype=torch.float32)
                if not active:
                    cache, mask, seqs, position, logits = out.cache, fresh, ids, positions[:, -1:], extra
                else:
                    _merge_caches(cache, out.cache)
                    columns = max(mask.shape[1], fresh.shape[1])
                    mask = torch.cat([_left_pad(mask, columns, 1), _left_pad(fresh, columns, 1)])
                    seqs = torch.cat([_left_pad(seqs, columns, 1, pad_id), _left_pad(ids, columns, 1, pad_id)])
                    position = torch.cat([position, positions[:, -1:]])
                    logits = torch.cat([logits, extra])
                active += rows
                for processor in processors:
                    processor.add(rows)
            padded = not bool(mask.all())
        scores = logits
        for processor in processors:
            scores = processor(seqs, scores)
        tokens = scores.argmax(-1)
        picked = tokens.tolist()
        for row, token in zip(active, picked, strict=True):
            new[row].append(token)
        keep = [i for i, (row, token) in enumerate(zip(active, picked, strict=True))
                if token not in stops and len(new[row]) < max_new_tokens]
        if not keep and not queue:
            break
        seqs = torch.cat([seqs, tokens[:, None]], dim=-1)
        if len(keep) < len(active):
            for processor in processors:
                processor.keep(keep)
            active = [active[i] for i in keep]
            if not keep:  # the next refill starts a new batch and cache
                continue
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            seqs, tokens, position, mask = seqs[index], tokens[index], position[index], mask[index]
            # Only plain layers can lose columns: a sliding-window layer (Gemma 2) counts the tokens it has
            # seen and would then build masks longer than its keys.
            if padded and mergeable:
                first = _trim(cache, mask)
                mask, seqs = mask[:, first:], seqs[:, first:]
                padded = not bool(mask.all())
        position = position + 1
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        out = model(input_ids=tokens[:, None], attention_mask=mask if padded else None, position_ids=position,
                    cache=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)
    return new
