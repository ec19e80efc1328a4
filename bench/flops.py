"""FLOPs and bytes of the real-weights workloads, counted from the model's shape and the tokens it ran.

    count = Count(shape)                        # shape: trainer.shapes.model_shape("smollm2-135m")
    with count.watching(model):                 # forward pre-hooks tally positions, attention pairs, labels
        backend.score(prompts, choices)
    count.inference_flops()                     # forward FLOPs on real tokens (padding is waste, not counted)
    count.lora_training_flops(lora_params)      # forward + backward through frozen weights + the adapters

How each workload is counted (docs/benchmarks.md#real-weights):

- forward, per real position: 2 FLOPs per weight of the decoder layers' Linear modules (`body`), plus
  attention: 4 x q_dim per (query, visible key) pair per layer (QK^T and AV); the LM head, 2 x hidden x
  vocabulary, only where logits are computed (the positions the head's input holds);
- LoRA training: the forward, then backward through the frozen weights, which needs the input gradients
  only (2 x body again, attention's backward 2x its forward), not the weight gradients; the adapters
  6 x their parameters (forward, input and weight gradients); the LM head on the label positions only,
  forward and input gradient (4 x hidden x vocabulary): 4N + 6n per token, not 6N;
- full training: 6 x body, 3x attention, 6 x hidden x vocabulary on label positions;
- batch-1 decoding is bounded by memory, not FLOPs: every weight is read once per step (a tied
  embedding/head matrix once): `weight_bytes` per token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Count:
    """Tallies of what a model ran on, and the FLOPs they make; `shape` is a `trainer.shapes.Shape`."""

    shape: Any
    positions: int = 0  # real (unpadded) token positions through the decoder
    computed: int = 0  # positions through the decoder, padding included
    pairs: int = 0  # (real query, visible real key) pairs, summed over rows (per layer)
    head_rows: int = 0  # positions the LM head module projected
    labels: int = 0  # positions with a next-token label (training)
    calls: int = 0  # decoder forward passes

    @property
    def body(self) -> int:
        return self.shape.linear_params()

    @property
    def head(self) -> int:
        return self.shape.hidden * self.shape.vocab

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one decoding step reads (float32; a tied embedding/head matrix counted once)."""
        return 4 * self.shape.params

    def attention_flops(self) -> int:
        return 4 * self.shape.q_dim * self.shape.layers * self.pairs

    def inference_flops(self) -> int:
        return 2 * self.body * self.positions + self.attention_flops() + 2 * self.head * self.head_rows

    def lora_training_flops(self, lora_params: int) -> int:
        return (4 * self.body * self.positions + 3 * self.attention_flops() + 6 * lora_params * self.positions
                + 4 * self.head * self.labels)

    def full_training_flops(self) -> int:
        return 6 * self.body * self.positions + 3 * self.attention_flops() + 6 * self.head * self.labels

    def reset(self) -> None:
        self.positions = self.computed = self.pairs = self.head_rows = self.labels = self.calls = 0

    @contextlib.contextmanager
    def watching(self, model: Any) -> Iterator[Count]:
        """Count every forward of `model` (a causal LM, PEFT-wrapped or not) inside the block."""
        decoder = model.get_decoder()
        head = model.get_output_embeddings()
        handles = [decoder.register_forward_pre_hook(self._decoder_hook, with_kwargs=True),
                   model.register_forward_pre_hook(self._model_hook, with_kwargs=True)]
        if head is not None:
            handles.append(head.register_forward_pre_hook(self._head_hook))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _decoder_hook(self, _module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        import torch

        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"][..., 0]
        rows, new = ids.shape[0], ids.shape[1]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))  # transformers 5.25 renamed it `cache`
        past = int(cache.get_seq_length()) if cache is not None else 0
        mask = kwargs.get("attention_mask")
        if mask is None or mask.dim() != 2:  # no padding: every key is real
            mask = torch.ones(rows, past + new, dtype=torch.long, device=ids.device)
        mask = mask.long()
        visible = mask.cumsum(-1)[:, -new:]  # real keys up to and including each query
        real = mask[:, -new:]
        self.positions += int(real.sum())
        self.computed += rows * new
        self.pairs += int((visible * real).sum())
        self.calls += 1

    def _model_hook(self, _module: Any, _args: tuple, kwargs: dict[str, Any]) -> None:
        labels = kwargs.get("labels")
        if labels is not None:
            self.labels += int((labels[:, 1:] != -100).sum())

    def _head_hook(self, _module: Any, args: tuple) -> None:
        self.head_rows += args[0].numel() // args[0].shape[-1]
