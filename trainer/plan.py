"""Memory plan of a training run, before any weight is loaded: `python -m trainer plan --model ID [--config FILE]`.

    est = estimate(TrainConfig(model=..., task="support_intent", task_defaults=True).resolved(), "cuda")
    est.peak, est.parts                                        # bytes: total and what it is made of
    est = estimate(cfg, "cpu", longest=151)                    # the data's longest example, not max_length
    cfg, decision = fit(cfg, "cuda", free_bytes("cuda"), longest=151)   # smaller batch or checkpointing

The model's shape comes from `trainer/shapes.py` (config numbers on the meta device, nothing downloaded);
the printed report from `trainer/plan_report.py`. The estimate adds, in bytes: the frozen weights; the trainable parameters with their
gradients and two AdamW moments; the activations autograd keeps for backward (counted tensor by tensor
for a decoder layer: RMSNorm inputs in fp32, SDPA's q/k/v/output, the padding mask SDPA converts per
layer, the gated MLP's three intermediates, each LoRA module's dropout mask and input copy), for the
configured batch at the longest example's token count where the data is known (else at full `max_length`), with and without gradient checkpointing; TRL's chunked LM head (a
4096 × 32768 tile, never the full logits); and the gradients in flight during backward. How it is counted,
calibrated and how far to trust it: docs/training.md#memory-plan.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from trainer.shapes import Shape, model_shape

GIB = 2**30

# TRL's fused LM head (trl/kernels/chunked_logprob.py) projects at most this many tokens × vocabulary
# columns at a time, and only the positions with a label (trainer/lm_head.py makes it so on every device).
HEAD_TOKENS, HEAD_VOCAB = 4096, 32768
# Measured on the CPU (docs/training.md#memory-plan): the torch fallback of the fused head's backward holds
# about this many fp32 temporaries of one tile at its peak (CUDA's Triton kernel works inside the tile).
HEAD_TORCH_TILES = 7.5
# Gradients in flight while a decoder layer runs backward, per token: this many hidden-size and MLP-size
# vectors in the activation dtype (calibrated on the CPU as well).
BACKWARD_HIDDEN, BACKWARD_MLP = 4.0, 3.0
# The estimate must fit with this factor to spare: the CUDA caching allocator's fragmentation and the
# estimate's own error (docs/training.md#memory-plan).
MARGIN = 1.15
# Bytes per parameter of an NF4 base with double quantisation (4 bits, an 8-bit absmax per 64 weights and
# an fp32 scale per 256 absmax blocks).
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)


# ---- how a device trains -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Regime:
    """Byte sizes of what training keeps, on one kind of device (sft.py: bf16 + autocast on CUDA, fp32 on CPU)."""

    name: str
    weight: int  # bytes of a base weight (the model is loaded in this dtype)
    act: int  # bytes of an activation element
    autocast: bool  # bf16 autocast: each LoRA module keeps its own bf16 copy of its (fp32-cast) input
    dropout_mask: int  # bytes per element of a dropout mask: CUDA's is bool, the CPU's a float tensor
    head_torch: bool  # the head's tiles are folded by torch ops (no Triton) and hold fp32 temporaries


REGIMES = {
    "cuda": Regime("cuda-bf16", weight=2, act=2, autocast=True, dropout_mask=1, head_torch=False),
    "cpu": Regime("cpu-fp32", weight=4, act=4, autocast=False, dropout_mask=4, head_torch=True),
    # Not how sft.py trains on the CPU: the CUDA recipe run on the CPU, to calibrate the bf16 terms here.
    "cpu-bf16": Regime("cpu-bf16", weight=2, act=2, autocast=True, dropout_mask=4, head_torch=True),
}


def regime_for(device: str) -> Regime:
    if device in REGIMES:
        return REGIMES[device]
    return REGIMES["cuda" if device.startswith("cuda") else "cpu"]


# ---- the estimate ------------------------------------------------------------------------------------------
@dataclass
class Estimate:
    """Bytes of one training run at its peak; `parts` names every term (docs/training.md#memory-plan)."""

    model: str
    regime: str
    batch_size: int
    max_length: int
    checkpointing: bool
    params: int
    trainable: int
    parts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)  # informative, not in the peak (e.g. full logits)

    @property
    def peak(self) -> int:
        return sum(self.parts.values())

    @property
    def required(self) -> int:
        """What must be free: the peak with the safety margin."""
        return int(self.peak * MARGIN)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak": self.peak, "required": self.required}


def layer_bytes_per_token(shape: Shape, regime: Regime, *, method: str, targets: list[str], r: int,
                          dropout: float, seq: int, padded: bool, first: bool = False) -> float:
    """Bytes one decoder layer keeps for backward, per token of the micro-batch.

    Counted tensor by tensor from what autograd saves in transformers' Llama-style layers (checked against
    the saved tensors themselves on the CPU, tests/trainer/test_plan.py). `first`: the first layer of a
    model whose input needs no gradient (frozen embeddings, no checkpointing) keeps less.
    """
    a = regime.act
    h, q, kv, i = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate
    lora = method in {"lora", "qlora"}
    full = method == "full"
    total = 0.0
    # Each RMSNorm keeps its input upcast to fp32 and 1/rms (nothing when its input needs no gradient), and
    # when its own weight trains (full), the normalised input in the activation dtype.
    total += (shape.norms_per_layer - (1 if first else 0)) * (4 * h + 4 + (a * h if full else 0))
    # SDPA keeps q, k, v and its output (k and v repeated to every head when a padding mask is passed,
    # transformers' repeat_kv), and the log-sum-exp per head in fp32.
    kv_kept = q if (padded and kv != q) else kv
    total += a * (2 * q + 2 * kv_kept) + 4 * shape.heads
    if any(n.endswith(".qkv_proj") for n, _, _ in shape.linears) and not (padded and kv != q):
        # A fused qkv projection (Phi-3): v is a view of its output, so the whole q|k|v tensor stays alive.
        total += a * (q + kv)
    if padded:  # the boolean padding mask, converted by SDPA into an additive (B, 1, S, S) mask per layer
        total += a * seq
    if shape.attention == "eager":  # softmax in fp32 and its bf16 copy: (B, heads, S, S) each
        total += shape.heads * seq * (4 + a)
    # Gated MLP (SwiGLU, GeGLU): the gate, the activation of the gate and the up projection.
    total += 3 * i * a
    # Inputs of the Linear layers: kept once per distinct input where the weight itself trains (full), or
    # per LoRA module (its dropout mask, and the input lora_A multiplies: under autocast a bf16 copy of the
    # fp32-cast input per module; in fp32 the dropout's output, or the shared input without dropout).
    inputs = {"q_proj": ("attn_in", h), "k_proj": ("attn_in", h), "v_proj": ("attn_in", h),
              "qkv_proj": ("attn_in", h), "o_proj": ("attn_out", q), "gate_proj": ("mlp_in", h),
              "up_proj": ("mlp_in", h), "gate_up_proj": ("mlp_in", h), "down_proj": ("mlp_act", i)}
    shared: dict[str, int] = {}
    for name, d_in, _out in shape.layer_linears(list(inputs) if full else targets):
        group = inputs.get(name, (name, d_in))[0]
        if group == "attn_out" and (full or (dropout == 0 and not regime.autocast)):
            continue  # o_proj's input is SDPA's output itself (same storage), already counted
        if full:
            shared[group] = d_in * a
            continue
        if not lora:
            continue
        needs_grad_in = not (first and group == "attn_in")
        if dropout > 0:
            total += d_in * ((regime.dropout_mask if needs_grad_in else 0) + (2 if regime.autocast else 4))
        elif regime.autocast:
            total += d_in * 2
        else:
            shared[group] = d_in * 4
        total += r * (2 if regime.autocast else 4)  # lora_A's output, kept by lora_B
    total += sum(shared.values())
    return total


def estimate(cfg: Any, device: str = "cuda", *, checkpointing: bool | None = None,
             shape: Shape | None = None, longest: int | None = None, answer: int | None = None) -> Estimate:
    """The peak memory of training `cfg` (a resolved `TrainConfig`) on `device` ("cuda", "cpu", "cpu-bf16").

    Args:
        checkpointing: gradient checkpointing on or off; default: `cfg.gradient_checkpointing` (None: off),
            always on for QLoRA (sft.py turns it on there).
        shape: the model's shape, when already known (default: `model_shape(cfg.model)`).
        longest: tokens of the longest training example, where the data is known: no batch is padded
            beyond it, so the activations are counted at it rather than at `cfg.max_length`.
        answer: the most loss positions of one example (its answer and end-of-turn tokens), where the
            data is known: the LM head projects only those (trainer/lm_head.py); default: every position.
    """
    shape = shape or model_shape(cfg.model)
    regime = regime_for(device)
    if checkpointing is None:
        checkpointing = bool(getattr(cfg, "gradient_checkpointing", None)) or cfg.method == "qlora"
    b, s = cfg.batch_size, cfg.max_length if longest is None else max(1, min(cfg.max_length, longest))
    tokens = b * s
    padded = b > 1 or cfg.packing
    targets, r = shape.lora_targets(list(cfg.target_modules)), cfg.lora_r
    lora = cfg.method in {"lora", "qlora"}
    a = regime.act
    parts: dict[str, int] = {}

    # Weights, trainable state, optimizer.
    saved_modules = _modules_to_save_params(shape, list(cfg.modules_to_save or [])) if lora else 0
    if cfg.method == "qlora":
        linear = shape.linear_params()
        # prepare_model_for_kbit_training casts everything that is not 4-bit (embeddings, norms) to fp32.
        parts["weights"] = int(linear * NF4_BYTES + (shape.params - linear) * 4)
    else:
        parts["weights"] = shape.params * regime.weight
    if lora:
        adapters = shape.lora_params(targets, r)
        trainable = adapters + saved_modules
        # LoRA weights in fp32 (PEFT's autocast_adapter_dtype), their fp32 gradients and two AdamW moments;
        # modules_to_save: a trained copy in the base dtype, its gradient and two moments.
        parts["trainable weights"] = adapters * 4 + saved_modules * regime.weight
        parts["gradients"] = adapters * 4 + saved_modules * regime.weight
        parts["AdamW moments"] = adapters * 8 + saved_modules * regime.weight * 2
    else:
        trainable = shape.params
        # Full fine-tuning in the model's dtype: the gradient and two AdamW moments of every weight, and
        # the optimizer step's temporaries (foreach AdamW: about one more copy).
        parts["gradients"] = shape.params * regime.weight
        parts["AdamW moments"] = shape.params * regime.weight * 2
        parts["optimizer step temporaries"] = shape.params * regime.weight

    # Activations kept for backward.
    first_frozen = not checkpointing and lora and not _trains_embeddings(cfg)
    kw = {"method": cfg.method, "targets": targets, "r": r, "dropout": cfg.lora_dropout, "seq": s,
          "padded": padded}
    per_layer = layer_bytes_per_token(shape, regime, **kw)
    first = layer_bytes_per_token(shape, regime, first=first_frozen, **kw)
    # The final norm (as in a layer), and the hidden states the LM head keeps: its label positions' only.
    head_rows = min(HEAD_TOKENS, tokens if answer is None else b * max(1, min(answer, s)))
    norm_bytes = 4 * shape.hidden + 4 + (a * shape.hidden if cfg.method == "full" else 0)
    outside = tokens * shape.norms_outside * norm_bytes + head_rows * shape.hidden * a
    if checkpointing:  # only each layer's input stays; the layer being back-propagated is recomputed whole
        parts["activations kept for backward"] = int(tokens * shape.layers * shape.hidden * a + outside)
    else:
        parts["activations kept for backward"] = int(tokens * (first + (shape.layers - 1) * per_layer) + outside)

    # Backward first runs TRL's fused LM head on the positions with a label: its tile buffer (always
    # HEAD_VOCAB columns, whatever the vocabulary), the fp32 gradient of its input and, without Triton, the
    # fp32 temporaries of the torch fallback. Then each decoder layer in turn: the gradients in flight (and,
    # with checkpointing, the layer's recomputed activations). The peak is the larger of the two.
    head = head_rows * HEAD_VOCAB * a + head_rows * shape.hidden * 4
    if regime.head_torch:
        head += int(HEAD_TORCH_TILES * head_rows * min(HEAD_VOCAB, shape.vocab) * 4)
    layer = int(tokens * a * (BACKWARD_HIDDEN * shape.hidden + BACKWARD_MLP * shape.intermediate))
    if checkpointing:
        layer += int(tokens * per_layer)
    parts["backward peak: LM head tile or one layer"] = max(head, layer)
    notes = {"LM head tile": head, "one layer in backward": layer,
             "full fp32 logits (not used: TRL computes log-probs in tiles)": tokens * shape.vocab * (a + 4 + 4)}
    return Estimate(model=cfg.model, regime=regime.name, batch_size=b, max_length=s, checkpointing=checkpointing,
                    params=shape.params, trainable=trainable, parts=parts, notes=notes)


def _trains_embeddings(cfg: Any) -> bool:
    return "embed_tokens" in (cfg.modules_to_save or []) or cfg.method == "full"


def _modules_to_save_params(shape: Shape, modules: list[str]) -> int:
    total = 0
    if "embed_tokens" in modules:
        total += shape.embed_params
    if "lm_head" in modules and not ("embed_tokens" in modules and shape.tied):  # tied: one matrix
        total += shape.head_params or shape.embed_params
    return total


# ---- fitting a run to the free memory ----------------------------------------------------------------------
@dataclass
class Decision:
    """What `fit` chose and why; written to the training summary as `memory_plan`."""

    device: str
    free: int
    batch_size: int
    grad_accum: int
    checkpointing: bool
    required: int
    fits: bool
    changed: str  # "" when the configured run fits as it is
    tokens_counted: int = 0  # the sequence length the activations were counted at (the data's longest, or max_length)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "free_gib": round(self.free / GIB, 2), "required_gib": round(self.required / GIB, 2)}


def fit(cfg: Any, device: str, free: int, *, shape: Shape | None = None,
        longest: int | None = None, answer: int | None = None) -> tuple[Any, Decision]:
    """`cfg` adapted so that its estimate fits `free` bytes: smaller device batches first (grad_accum grows
    so that the effective batch stays; no recomputation), then gradient checkpointing at the largest batch
    that fits. An explicit `gradient_checkpointing` True/False is kept; QLoRA always checkpoints.
    A run that fits nowhere is returned at its smallest setting with `fits=False`. `longest`, `answer`: as in
    `estimate`."""
    shape = shape or model_shape(cfg.model)
    forced = True if cfg.method == "qlora" else getattr(cfg, "gradient_checkpointing", None)
    effective = cfg.batch_size * cfg.grad_accum
    batches = [cfg.batch_size]
    while batches[-1] > 1:
        batches.append(max(1, batches[-1] // 2))
    options = [(False, b) for b in batches] if forced is not True else []
    if forced is not False:
        options += [(True, b) for b in batches]
    chosen = None
    for ckpt, b in options:
        est = estimate(replace(cfg, batch_size=b), device, checkpointing=ckpt, shape=shape, longest=longest,
                       answer=answer)
        if est.required <= free:
            chosen = (ckpt, b, est)
            break
    fits = chosen is not None
    if chosen is None:  # nothing fits: the smallest option, and say so
        ckpt, b = options[-1]
        chosen = (ckpt, b, estimate(replace(cfg, batch_size=b), device, checkpointing=ckpt, shape=shape,
                                      longest=longest, answer=answer))
    ckpt, b, est = chosen
    accum = max(1, math.ceil(effective / b))
    changes = []
    if b != cfg.batch_size:
        changes.append(f"batch {cfg.batch_size} -> {b} with grad_accum {cfg.grad_accum} -> {accum}")
    if ckpt and forced is None:
        changes.append("gradient checkpointing on")
    adapted = replace(cfg, batch_size=b, grad_accum=accum, gradient_checkpointing=ckpt)
    return adapted, Decision(device=device, free=free, batch_size=b, grad_accum=accum, checkpointing=ckpt,
                             required=est.required, fits=fits, changed="; ".join(changes),
                             tokens_counted=est.max_length)
