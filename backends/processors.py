"""Per-row logits processors for our decoding loop (backends/decode.py) and `model.generate`.

`RowSampler` turns greedy decoding into per-row sampling whose draws depend on the row's seed only;
`GuidedMask` constrains each row to a JSON schema through Outlines-core guides. Both follow rows
leaving (`keep`) and joining (`add`) the batch under continuous batching.
"""

from __future__ import annotations

import time
from typing import Any


class RowSampler:
    """A logits processor that samples each row with its own generator inside a greedy `generate`.

    Temperature and top-p are transformers' own warpers; then exponential-race noise (Gumbel-max):
    `argmax(log p - log E)`, `E ~ Exp(1)` drawn from the row's generator, is a draw from `p`. Row `i`
    consumes one vocabulary-sized draw per step from a generator seeded with `seeds[i]`, so its
    tokens depend on its prompt and seed only, not on the batch it is in.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        """Args:
            seeds: one per prompt. Under `model.generate` row `i` of the batch draws from `seeds[i]`;
                under `decode`, rows join through `add(prompt indices)` and draw from their own seeds.
        """
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.warpers: list[Any] = [TemperatureLogitsWarper(temperature)]
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        self.seeds = [int(s) for s in seeds]
        self.generators: list[Any] | None = None  # per row of the current batch; None: one per seed

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.generators is None:
            self.add(list(range(len(self.seeds))))
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        vocab = scores.shape[-1]
        race = torch.stack([torch.empty(vocab).exponential_(generator=g) for g in self.generators])
        return scores.float() - race.log().to(scores.device)

    def keep(self, rows: list[int]) -> None:
        """Only these rows go on (positions in the current batch): each keeps its own generator."""
        if self.generators is not None:
            self.generators = [self.generators[i] for i in rows]

    def add(self, rows: list[int]) -> None:
        """New rows join the end of the batch, each with a fresh generator seeded with its prompt's seed."""
        import torch

        if self.generators is None:
            self.generators = []
        self.generators += [torch.Generator().manual_seed(self.seeds[r]) for r in rows]


class GuidedMask:
    """A JSON-schema constraint as a logits processor: one Outlines-core `Guide` per row over the
    schema's compiled `Index`, the whole batch masked in one tensor op.

    Outlines' own processor masks row by row through a `torch.compile`d kernel (a compiled-call
    dispatch per row and step) and rebuilds each row's bitmask every step. Here a mask depends on
    the guide's state only, so each state's mask is built once (unpacked to booleans) and kept for
    every later step, batch and call with this schema; a step is then the guides' advance (Rust)
    plus one `masked_fill_` over the batch. `mask_seconds` / `masked_rows` give the time per token.
    """

    def __init__(self, index: Any, blocked: tuple[int, ...] = ()):
        """Args:
            index: the schema's compiled Outlines-core `Index`.
            blocked: token ids never allowed: the model's other end-of-sequence ids (Llama 3 stops
                on <|end_of_text|> too, which the guide, knowing only the tokenizer's EOS, would allow
                as text inside a JSON string and so end the row mid-object).
        """
        self.index = index
        self.blocked = list(blocked)
        self._guides: list[Any] | None = None
        self._fresh: list[bool] = []  # per row: no token of its own yet (the guide must not advance)
        self._masks: dict[tuple[str, int], Any] = {}  # (device, guide state) -> allowed tokens (bool)
        self.mask_seconds = 0.0
        self.masked_rows = 0

    def reset(self) -> None:
        """Fresh guides (a new batch); the masks per state stay."""
        self._guides, self._fresh = None, []

    def keep(self, rows: list[int]) -> None:
        """Only these rows go on (positions in the current batch), each with its own guide."""
        if self._guides is not None:
            self._guides = [self._guides[i] for i in rows]
            self._fresh = [self._fresh[i] for i in rows]

    def add(self, rows: list[int]) -> None:
        """New rows join the end of the batch, each with a fresh guide at the schema's start."""
        from outlines_core import Guide

        if self._guides is None:
            self._guides, self._fresh = [], []
        self._guides += [Guide(self.index) for _ in rows]
        self._fresh += [True] * len(rows)

    def _mask(self, guide: Any, vocab: int, device: Any) -> Any:
        import torch

        key = (str(device), guide.get_state())
        mask = self._masks.get(key)
        if mask is None or mask.shape[0] != vocab:
            bits = torch.zeros((1, (vocab + 31) // 32), dtype=torch.int32)
            guide.write_mask_into(bits.data_ptr(), bits.numel(), bits.element_size())
            shifts = torch.arange(32, dtype=torch.int32)
            mask = ((bits.unsqueeze(-1) >> shifts) & 1).bool().view(-1)[:vocab]
            mask[[t for t in self.blocked if t < vocab]] = False
            mask = mask.to(device)
            self._masks[key] = mask
        return mask

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        start = time.perf_counter()
        if self._guides is None:
            self.add(list(range(scores.shape[0])))
        if not all(self._fresh):  # a new row's last input is its prompt's: nothing to advance on
            for guide, token, fresh in zip(self._guides, input_ids[:, -1].tolist(), self._fresh, strict=True):
                # A row that has stopped gets pad tokens from `generate`: its guide stays where it is
                # (Outlines advances unless finished, and raises on a pad after a stop mid-object).
                if not fresh and guide.accepts_tokens([token]):
                    guide.advance(token_id=token, return_tokens=False)
        self._fresh = [False] * len(self._guides)
        vocab = scores.shape[-1]
        allowed = torch.stack([self._mask(g, vocab, scores.device) for g in self._guides])
        scores = scores.masked_fill(~allowed, float("-inf"))
        self.mask_seconds += time.perf_counter() - start
        self.masked_rows += len(self._guides)
        return scores
