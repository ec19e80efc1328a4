"""What every zoo family shares: the tiny shape, our chat templates, and writing a model folder.

    shape = tiny_shape(64)                                  # 2 layers, width 64, GQA heads
    text = template("gemma")                                # backends/zoo/templates/gemma.jinja
    save(out, tokenizer, config, generation, seed=0)        # random weights from the seed + tokenizer
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.chat_templates import TEMPLATES, template  # noqa: F401  (the zoo's families read theirs here)


def tiny_shape(width: int = 64, layers: int = 2) -> dict[str, int]:
    """A few layers of `width`: heads of 16, half as many key/value heads (grouped-query attention)."""
    heads = max(2, width // 16)
    return {"hidden_size": width, "intermediate_size": 4 * width, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": max(1, heads // 2), "head_dim": width // heads}


def save(out: Path, tokenizer: Any, config: Any, generation: dict[str, Any], *, seed: int) -> None:
    """Initialise `config`'s architecture from `seed` and write weights, generation config and tokenizer.

    Same seed, same bytes: the weights come from `torch.manual_seed(seed)` alone.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    GenerationConfig(**generation).save_pretrained(out)
    # Saved as the generic fast tokenizer (transformers 5 writes tokenizer_class "TokenizersBackend"): a
    # model-specific class would rebuild the tokenizer from vocab + merges on load and drop our pre-tokenizer.
    tokenizer.save_pretrained(out)
