"""Memory plan of a training run, before any weight is loaded: `python -m trainer plan --model ID [--config FILE]`.

    shape = model_shape("unsloth/Llama-3.2-3B-Instruct")       # config numbers on the meta device, no download
    est = estimate(TrainConfig(model=..., task="support_intent", task_defaults=True).resolved(), "cuda")
    est.peak, est.parts                                        # bytes: total and what it is made of
    cfg, decision = fit(cfg, "cuda", free_bytes("cuda"))       # smaller batch (+ accumulation) or checkpointing

The shape comes from the model's config built on the meta device (accelerate's `init_empty_weights`): a
tiny model's own config.json, a config already on this machine (a local folder or the Hub cache), or the
config numbers of the models in `KNOWN_CONFIGS` (Llama 3.2 1B/3B, Qwen2.5 1.5B/3B/7B, Mistral 7B v0.3),
written here as data. The estimate adds, in bytes: the frozen weights; the trainable parameters with their
gradients and two AdamW moments; the activations autograd keeps for backward (counted tensor by tensor
for a decoder layer: RMSNorm inputs in fp32, SDPA's q/k/v/output, the padding mask SDPA converts per
layer, the gated MLP's three intermediates, each LoRA module's dropout mask and input copy), for the
configured batch at full `max_length`, with and without gradient checkpointing; TRL's chunked LM head (a
4096 × 32768 tile, never the full logits); and the gradients in flight during backward. How it is counted,
calibrated and how far to trust it: docs/training.md#memory-plan.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from backends.models import is_tiny, resolve_model
from core.errors import UserError
from trainer.config import ALL_LINEAR

GIB = 2**30

# config.json numbers of the models users bring most (public facts of their model cards' config files).
# Each shape is listed once; `KNOWN_IDS` maps every Hub id that carries it (base, Instruct, unsloth's copies).
_LLAMA32 = {"model_type": "llama", "vocab_size": 128256, "tie_word_embeddings": True,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "hidden_act": "silu",
            "num_key_value_heads": 8}
_QWEN25 = {"model_type": "qwen2", "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "hidden_act": "silu"}
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "Llama-3.2-1B": {**_LLAMA32, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "head_dim": 64},
    "Llama-3.2-3B": {**_LLAMA32, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
                     "num_attention_heads": 24, "head_dim": 128},
    "Qwen2.5-1.5B": {**_QWEN25, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                     "tie_word_embeddings": True},
    "Qwen2.5-3B": {**_QWEN25, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                   "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936,
                   "tie_word_embeddings": True},
    "Qwen2.5-7B": {**_QWEN25, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                   "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                   "tie_word_embeddings": False},
    "Mistral-7B-v0.3": {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
                        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                        "head_dim": 128, "vocab_size": 32768, "tie_word_embeddings": False,
                        "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "hidden_act": "silu",
                        "sliding_window": None},
}
# Published parameter counts (model cards), which the meta-device count of each shape must reproduce.
PUBLISHED_PARAMS = {"Llama-3.2-1B": 1.24e9, "Llama-3.2-3B": 3.21e9, "Qwen2.5-1.5B": 1.54e9,
                    "Qwen2.5-3B": 3.09e9, "Qwen2.5-7B": 7.61e9, "Mistral-7B-v0.3": 7.25e9}
KNOWN_IDS: dict[str, str] = {
    **{f"{org}/Llama-3.2-{s}{v}": f"Llama-3.2-{s}" for org in ("meta-llama", "unsloth") for s in ("1B", "3B")
       for v in ("", "-Instruct")},
    **{f"{org}/Qwen2.5-{s}{v}": f"Qwen2.5-{s}" for org in ("Qwen", "unsloth") for s in ("1.5B", "3B", "7B")
       for v in ("", "-Instruct")},
    **{f"mistralai/Mistral-7B{v}-v0.3": "Mistral-7B-v0.3" for v in ("", "-Instruct")},
    **{f"unsloth/mistral-7b{v}-v0.3": "Mistral-7B-v0.3" for v in ("", "-instruct")},
}

# TRL's fused LM head (trl/kernels/chunked_logprob.py) projects at most this many tokens × vocabulary
# columns at a time; on CUDA only the positions with a label are projected, elsewhere every position.
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


# ---- model shape -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """What the estimate needs to know of a model, read off its config and its modules on the meta device."""

    model: str
    source: str
    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    max_positions: int | None
    attention: str
    params: int
    embed_params: int
    head_params: int  # 0 when tied to the input embeddings
    linears: tuple[tuple[str, int, int], ...]  # (qualified name, in_features, out_features) of every Linear
    norms_per_layer: int
    norms_outside: int

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_linears(self, targets: list[str]) -> list[tuple[str, int, int]]:
        """(leaf name, in, out) of the decoder layer 0's Linear modules that `targets` names."""
        return [(n.rsplit(".", 1)[-1], i, o) for n, i, o in self.linears
                if _in_layer0(n) and n.rsplit(".", 1)[-1] in targets]

    def lora_targets(self, targets: list[str]) -> list[str]:
        """`targets` with PEFT's 'all-linear' spelled out: every Linear of the decoder layers (not the head)."""
        if ALL_LINEAR not in targets:
            return targets
        leaves = dict.fromkeys(n.rsplit(".", 1)[-1] for n, _, _ in self.linears if ".layers." in f".{n}")
        return [*leaves, *(t for t in targets if t != ALL_LINEAR)]

    def lora_params(self, targets: list[str], r: int) -> int:
        """Parameters of rank-`r` LoRA adapters on every Linear named in `targets` (PEFT matches the leaf)."""
        return sum(r * (i + o) for n, i, o in self.linears if n.rsplit(".", 1)[-1] in targets)

    def linear_params(self) -> int:
        """Weights of the decoder layers' Linear modules: what QLoRA stores in 4 bits."""
        return sum(i * o for n, i, o in self.linears if ".layers." in f".{n}")


def _in_layer0(name: str) -> bool:
    return ".layers.0." in f".{name}"


def known_config(model: str) -> dict[str, Any] | None:
    """The config numbers written in `KNOWN_CONFIGS` for a Hub id of `KNOWN_IDS` (case-insensitive)."""
    by_lower = {k.lower(): v for k, v in KNOWN_IDS.items()}
    name = by_lower.get(model.strip().rstrip("/").lower())
    return None if name is None else dict(KNOWN_CONFIGS[name])


def load_config(model: str) -> tuple[Any, str]:
    """(transformers config, where it came from) without downloading: a tiny model's folder, `KNOWN_CONFIGS`,
    or a config.json already on this machine (a local folder or the Hub cache)."""
    from transformers import AutoConfig

    if is_tiny(model):
        path = resolve_model(model)
        return AutoConfig.from_pretrained(path), f"the tiny model's config.json ({path})"
    numbers = known_config(model)
    if numbers is not None:
        model_type = numbers.pop("model_type")
        return AutoConfig.for_model(model_type, **numbers), "config numbers written in trainer/plan.py"
    try:
        return AutoConfig.from_pretrained(model, local_files_only=True), "config.json on this machine"
    except (OSError, ValueError):
        known = ", ".join(sorted(KNOWN_IDS))
        raise UserError(f"--model {model}: no config for it on this machine and not one of the known shapes "
                        f"({known}); pass a local model folder, or a Hub id whose config is cached") from None


@lru_cache(maxsize=32)
def model_shape(model: str) -> Shape:
    """The shape of `model`, from its config instantiated on the meta device (no memory, no weights)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config, source = load_config(model)
    with init_empty_weights():
        net = AutoModelForCausalLM.from_config(config)
    net.tie_weights()  # from_config under init_empty_weights leaves tied embeddings as two matrices
    text = config.get_text_config()
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    embed = net.get_input_embeddings()
    head = net.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    linears = tuple((n, m.in_features, m.out_features) for n, m in net.named_modules()
                    if isinstance(m, torch.nn.Linear))
    norms = [n for n, m in net.named_modules() if type(m).__name__.endswith(("RMSNorm", "LayerNorm"))]
    return Shape(
        model=model, source=source, model_type=text.model_type, layers=text.num_hidden_layers,
        hidden=text.hidden_size, heads=heads, kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=head_dim, intermediate=text.intermediate_size, vocab=text.vocab_size, tied=tied,
        max_positions=getattr(text, "max_position_embeddings", None),
        attention=getattr(net.config, "_attn_implementation", None) or "sdpa",
        params=sum(p.numel() for p in net.parameters()), embed_params=embed.weight.numel(),
        head_params=0 if tied or head is None else head.weight.numel(), linears=linears,
        norms_per_layer=sum(_in_layer0(n) for n in norms),
        norms_outside=sum(".layers." not in f".{n}" for n in norms),
    )


# ---- how a device trains -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Regime:
    """Byte sizes of what training keeps, on one kind of device (sft.py: bf16 + autocast on CUDA, fp32 on CPU)."""

    name: str
    weight: int  # bytes of a base weight (the model is loaded in this dtype)
    act: int  # bytes of an activation element
    autocast: bool  # bf16 autocast: each LoRA module keeps its own bf16 copy of its (fp32-cast) input
    dropout_mask: int  # bytes per element of a dropout mask: CUDA's is bool, the CPU's a float tensor
    head_compact: bool  # TRL's head projects only the positions with a label (CUDA) or every position
    head_torch: bool  # the head's tiles are folded by torch ops (no Triton) and hold fp32 temporaries


REGIMES = {
    "cuda": Regime("cuda-bf16", weight=2, act=2, autocast=True, dropout_mask=1, head_compact=True,
                   head_torch=False),
    "cpu": Regime("cpu-fp32", weight=4, act=4, autocast=False, dropout_mask=4, head_compact=False,
                  head_torch=True),
    # Not how sft.py trains on the CPU: the CUDA recipe run on the CPU, to calibrate the bf16 terms here.
    "cpu-bf16": Regime("cpu-bf16", weight=2, act=2, autocast=True, dropout_mask=4, head_compact=False,
                       head_torch=True),
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
             shape: Shape | None = None) -> Estimate:
    """The peak memory of training `cfg` (a resolved `TrainConfig`) on `device` ("cuda", "cpu", "cpu-bf16").

    Args:
        checkpointing: gradient checkpointing on or off; default: `cfg.gradient_checkpointing` (None: off),
            always on for QLoRA (sft.py turns it on there).
        shape: the model's shape, when already known (default: `model_shape(cfg.model)`).
    """
    shape = shape or model_shape(cfg.model)
    regime = regime_for(device)
    if checkpointing is None:
        checkpointing = bool(getattr(cfg, "gradient_checkpointing", None)) or cfg.method == "qlora"
    b, s = cfg.batch_size, cfg.max_length
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
    # The final norm (as in a layer) and the hidden states the LM head keeps.
    norm_bytes = 4 * shape.hidden + 4 + (a * shape.hidden if cfg.method == "full" else 0)
    outside = shape.norms_outside * norm_bytes + shape.hidden * a
    if checkpointing:  # only each layer's input stays; the layer being back-propagated is recomputed whole
        parts["activations kept for backward"] = int(tokens * (shape.layers * shape.hidden * a + outside))
    else:
        parts["activations kept for backward"] = int(tokens * (first + (shape.layers - 1) * per_layer + outside))

    # Backward first runs TRL's fused LM head: its tile buffer (always HEAD_VOCAB columns, whatever the
    # vocabulary), the fp32 gradient of its input and, without Triton, the fp32 temporaries of the torch
    # fallback. Then each decoder layer in turn: the gradients in flight (and, with checkpointing, the
    # layer's recomputed activations). The peak is the larger of the two.
    head_rows = min(HEAD_TOKENS, tokens)
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

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "free_gib": round(self.free / GIB, 2), "required_gib": round(self.required / GIB, 2)}


def fit(cfg: Any, device: str, free: int, *, shape: Shape | None = None) -> tuple[Any, Decision]:
    """`cfg` adapted so that its estimate fits `free` bytes: smaller device batches first (grad_accum grows
    so that the effective batch stays; no recomputation), then gradient checkpointing at the largest batch
    that fits. An explicit `gradient_checkpointing` True/False is kept; QLoRA always checkpoints.
    A run that fits nowhere is returned at its smallest setting with `fits=False`."""
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
        est = estimate(replace(cfg, batch_size=b), device, checkpointing=ckpt, shape=shape)
        if est.required <= free:
            chosen = (ckpt, b, est)
            break
    fits = chosen is not None
    if chosen is None:  # nothing fits: the smallest option, and say so
        ckpt, b = options[-1]
        chosen = (ckpt, b, estimate(replace(cfg, batch_size=b), device, checkpointing=ckpt, shape=shape))
    ckpt, b, est = chosen
    accum = max(1, math.ceil(effective / b))
    changes = []
    if b != cfg.batch_size:
        changes.append(f"batch {cfg.batch_size} -> {b} with grad_accum {cfg.grad_accum} -> {accum}")
    if ckpt and forced is None:
        changes.append("gradient checkpointing on")
    adapted = replace(cfg, batch_size=b, grad_accum=accum, gradient_checkpointing=ckpt)
    return adapted, Decision(device=device, free=free, batch_size=b, grad_accum=accum, checkpointing=ckpt,
                             required=est.required, fits=fits, changed="; ".join(changes))


# ---- printing ---------------------------------------------------------------------------------------------
def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def report(cfg: Any, device: str = "cuda", memory_gib: float = 24.0, reserved_gib: float = 1.0) -> str:
    """The plan as text: the shape, every term with and without checkpointing, and the fit to a card."""
    shape = model_shape(cfg.model)
    regime = regime_for(device)
    off = estimate(cfg, device, checkpointing=False, shape=shape)
    on = estimate(cfg, device, checkpointing=True, shape=shape)
    lora = cfg.method in {"lora", "qlora"}
    lines = [
        f"memory plan: {cfg.model}  ({shape.source}; nothing downloaded)",
        f"  shape: {shape.model_type}, {shape.layers} layers, hidden {shape.hidden}, heads {shape.heads}/"
        f"{shape.kv_heads} kv x {shape.head_dim}, MLP {shape.intermediate}, vocab {shape.vocab:,}"
        f"{', tied embeddings' if shape.tied else ''}; {shape.params / 1e9:.3f} B parameters",
        f"  run: {cfg.method}" + (f" r={cfg.lora_r} dropout {cfg.lora_dropout} on {','.join(shape.lora_targets(list(cfg.target_modules)))}"
                                  if lora else "")
        + f"; batch {cfg.batch_size} x max_length {cfg.max_length}, grad_accum {cfg.grad_accum}; {regime.name}"
        + f"; trainable {off.trainable / 1e6:.2f} M ({off.trainable / shape.params:.2%})",
        f"  {'term':<58}{'no checkpointing':>18}{'checkpointing':>16}",
    ]
    for key in off.parts:
        lines.append(f"  {key:<58}{gib(off.parts[key]):>18}{gib(on.parts[key]):>16}")
        if key.startswith("backward peak"):
            for note in ("LM head tile", "one layer in backward"):
                lines.append(f"  {'  ' + note:<58}{gib(off.notes[note]):>18}{gib(on.notes[note]):>16}")
    lines.append(f"  {'peak estimate':<58}{gib(off.peak):>18}{gib(on.peak):>16}")
    lines.append(f"  {f'needs free (x{MARGIN} margin)':<58}{gib(off.required):>18}{gib(on.required):>16}")
    for key, value in off.notes.items():
        if key.startswith("full fp32 logits"):
            lines.append(f"  ({key}: {gib(value)})")
    usable = int((memory_gib - reserved_gib) * GIB)
    configured = getattr(cfg, "gradient_checkpointing", None)
    as_set = {True: on, False: off, None: off}[configured if cfg.method != "qlora" else True]
    lines.append(f"  on a {memory_gib:g} GiB card ({reserved_gib:g} GiB kept for the CUDA context): as configured "
                 f"(checkpointing {'on' if as_set.checkpointing else 'off'}) "
                 + ("fits" if as_set.required <= usable else "does NOT fit"))
    _adapted, decision = fit(cfg, device, usable, shape=shape)
    lines.append("  training would run " + (decision.changed if decision.changed else "as configured")
                 + f": needs {gib(decision.required)} of {gib(usable)}"
                 + ("" if decision.fits else "  (does not fit even so)"))
    lines.append("  how far to trust it: on the CPU within -2%..+12% of the measured peak (activations within 2%, "
                 "bf16 autocast included);\n  on CUDA the kernels' own terms are modelled, expected within "
                 "±15%, not yet measured on a card (docs/training.md#memory-plan)")
    return "\n".join(lines)


def plan_json(cfg: Any, device: str = "cuda", memory_gib: float = 24.0, reserved_gib: float = 1.0) -> str:
    shape = model_shape(cfg.model)
    usable = int((memory_gib - reserved_gib) * GIB)
    _adapted, decision = fit(cfg, device, usable, shape=shape)
    out = {"shape": {k: v for k, v in asdict(shape).items() if k != "linears"},
           "no_checkpointing": estimate(cfg, device, checkpointing=False, shape=shape).as_dict(),
           "checkpointing": estimate(cfg, device, checkpointing=True, shape=shape).as_dict(),
           "fit": decision.as_dict(), "memory_gib": memory_gib, "reserved_gib": reserved_gib, "margin": MARGIN}
    return json.dumps(out, indent=2)


def config_file(path: Path | None) -> dict[str, Any]:
    """A JSON object of TrainConfig fields (run.py's --config), or {} without a path."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the config must be a JSON object of TrainConfig fields")
    return data
