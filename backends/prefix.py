"""Shared prompt prefixes: how many leading tokens a batch of prompts has in common, and how to split
a batch so that prompts which start alike run together.

Scoring (`TransformersBackend.score`) runs the tokens every prompt of a group starts with once, as one
row, and only the rest of each prompt batched: a group costs about `shared + rows × (longest − shared)`
token positions instead of `rows × longest`. An evaluation batch often mixes prompt families (one
instruction per language, say) whose common prefix is only the chat template's first tokens; split
where the families part, each runs its own long shared instruction once.
"""

from __future__ import annotations

from itertools import pairwise

# What one extra forward pass costs, in token positions of a batched pass: a second group pays it.
PASS_OVERHEAD = 32


def shared_prefix(rows: list[list[int]]) -> int:
    """Leading tokens all `rows` share, leaving every row at least one token of its own (its last
    position's logits are what the caller reads); 0 for a single row, which gains nothing."""
    if len(rows) < 2:
        return 0
    shared = min(_common(rows[0], row) for row in rows[1:])
    return max(0, min(shared, min(map(len, rows)) - 1))


def prefix_groups(rows: list[list[int]], passes: int = 1) -> list[list[int]]:
    """Indices of `rows` in groups that each share a prefix, where splitting costs less than one group.

    Rows are sorted by their tokens, so prompts that start alike are neighbours; a group is split
    where its neighbours share the fewest tokens (the point where prompt families part), and each
    half again, keeping a split only when the halves' token positions plus `passes` forward passes
    per extra group (1 + the multi-token choices, for scoring) cost less than the whole.
    """
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    # Tokens each sorted row shares with the next: a run's shared prefix is the least of them.
    common = [_common(rows[a], rows[b]) for a, b in pairwise(order)]
    lengths = [len(rows[i]) for i in order]

    def cost(lo: int, hi: int) -> int:
        shared = 0 if hi - lo < 2 else max(0, min(min(common[lo : hi - 1]), min(lengths[lo:hi]) - 1))
        return shared + (hi - lo) * (max(lengths[lo:hi]) - shared) + passes * PASS_OVERHEAD

    def split(lo: int, hi: int) -> list[tuple[int, int]]:
        if hi - lo < 2:
            return [(lo, hi)]
        cut = min(range(lo, hi - 1), key=lambda k: common[k]) + 1
        parts = split(lo, cut) + split(cut, hi)
        return parts if sum(cost(a, b) for a, b in parts) < cost(lo, hi) else [(lo, hi)]

    return [order[lo:hi] for lo, hi in split(0, len(rows))]


def _common(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
