"""The training loss's LM head on the positions that carry a loss only, on every device.

    trainer = SFTTrainer(...)              # TRL patches the model with its fused LM head
    compact_lm_head(trainer.model)         # build_trainer does this: same loss, the head on label positions only

TRL's SFTTrainer computes the loss through a fused LM head (`trl.trainer.utils.add_fused_lm_head`):
per-token log-probabilities in tiles, never the whole [batch, positions, vocabulary] logits. On a
CUDA/XPU device it projects only the positions whose label is not -100; everywhere else (a CPU among
them) it projects every position, prompt and padding included, then zeroes what carries no loss. With
`completion_only_loss` a classification example carries a loss on 2-3 of its ~80-200 tokens, so on a
CPU the head (576 x 49,152 for SmolLM2: a fifth of the model) ran forward and twice backward on ~40x
the positions it needed, with the tiles' float32 softmax work: 37% of a training step on smollm2-135m
(docs/benchmarks.md#real-weights). `compact_lm_head` replaces that forward with the same computation
(`trl.kernels.ChunkedLogProbFunction`, same outputs) on the label positions only, on every device.
"""

from __future__ import annotations

import functools
import types
from typing import Any

# What SFTTrainer asks its fused head for (its loss, and its `entropy` and `mean_token_accuracy` logs).
OUTPUTS = ("log_probs", "entropy", "is_top1")
# Vocabulary columns per tile: TRL's own `_CHUNKED_LOGPROB_CHUNK_SIZE`.
VOCAB_CHUNK = 32768
# Config fields that scale the logits; TRL's fused head handles them, ours leaves such models to it.
_SCALES = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def compact_lm_head(model: Any) -> bool:
    """Make `model`'s fused-LM-head forward (installed by TRL's trainer) project only the positions that
    carry a loss. `model` may be a PEFT model (its base model is patched). Returns whether it was patched:
    not where TRL installed no fused head, or for a config that scales its logits (left to TRL's code).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    fused = vars(base).get("forward")  # TRL binds its fused forward on the instance; the class keeps the original
    if fused is None or getattr(fused, "compact_lm_head", False):
        return False
    text_config = base.config.get_text_config()
    if any(getattr(text_config, name, None) is not None for name in _SCALES):
        return False
    softcap = getattr(text_config, "final_logit_softcapping", None)

    @functools.wraps(type(base).forward)  # `generate` checks its kwargs against this signature
    def forward(self: Any, *args: Any, fused_lm_head: bool = False, labels: Any = None, shift_labels: Any = None,
                num_items_in_batch: Any = None, **kwargs: Any) -> Any:
        if (not fused_lm_head or labels is None or shift_labels is not None or kwargs.get("output_router_logits")
                or getattr(text_config, "output_router_logits", False)):
            # Generation, pre-shifted labels (sequence parallelism), MoE aux losses: TRL's own forward.
            return fused(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                         num_items_in_batch=num_items_in_batch, **kwargs)
        return _compact_forward(self, args, kwargs, labels, num_items_in_batch, softcap)

    forward.compact_lm_head = True  # type: ignore[attr-defined]
    forward.trl_forward = fused  # type: ignore[attr-defined]  # the replaced forward (tests compare the two)
    base.forward = types.MethodType(forward, base)
    return True


def _compact_forward(model: Any, args: tuple, kwargs: dict[str, Any], labels: Any, num_items_in_batch: Any,
                     softcap: float | None) -> Any:
    """TRL's fused forward with its `compact` branch (the one it takes on CUDA), on any device."""
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import FusedCausalLMOutput, maybe_gather_lm_head_ctx

    kwargs["use_cache"] = False
    hidden = model.base_model(*args, **kwargs).last_hidden_state[:, :-1]
    head = model.get_output_embeddings()
    hidden = hidden.to(head.weight.device)
    labels = labels[:, 1:].to(head.weight.device)
    mask = labels != -100
    with maybe_gather_lm_head_ctx(head.weight, head.bias):  # DeepSpeed ZeRO-3 shards the head: gather it, as TRL does
        per_token = ChunkedLogProbFunction.apply(hidden[mask], head.weight, head.bias, labels[mask], 1.0, VOCAB_CHUNK,
                                                 softcap, 1.0, OUTPUTS)
    # masked_scatter keeps the output connected to the graph even when no label is valid (a zero loss).
    log_probs, entropy, _, _, is_top1 = (None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x)
                                         for x in per_token)
    count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return FusedCausalLMOutput(loss=-log_probs.sum() / count, log_probs=log_probs, entropy=entropy,
                               is_top1=is_top1, label_mask=mask)
