"""Model shapes for the memory plan, before any weight is loaded: config numbers on the meta device.

    shape = model_shape("unsloth/Llama-3.2-3B-Instruct")   # layers, widths, vocab, every Linear; no download
    shape.lora_params(shape.lora_targets(["all-linear"]), r=16)

The shape comes from the model's config built on the meta device (accelerate's `init_empty_weights`): an
offline model's own config.json (tiny or packaged), a config already on this machine (a local folder or
the Hub cache), or the config numbers of the models in `KNOWN_CONFIGS` (Llama 3.2 1B/3B, Qwen2.5
1.5B/3B/7B, Mistral 7B v0.3), written here as data. `trainer/plan.py` turns a shape and a training config
into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from backends.models import is_packaged, is_tiny, resolve_model
from core.errors import UserError
from trainer.config import ALL_LINEAR

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
    """(transformers config, where it came from) without downloading: an offline model's folder, `KNOWN_CONFIGS`,
    or a config.json already on this machine (a local folder or the Hub cache)."""
    from transformers import AutoConfig

    if is_tiny(model) or is_packaged(model):
        path = resolve_model(model)
        kind = "tiny" if is_tiny(model) else "packaged"
        return AutoConfig.from_pretrained(path), f"the {kind} model's config.json ({path})"
    numbers = known_config(model)
    if numbers is not None:
        model_type = numbers.pop("model_type")
        return AutoConfig.for_model(model_type, **numbers), "config numbers written in trainer/shapes.py"
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
