"""Load a causal LM and its tokenizer by Hub id, local path, or one of the offline models.

    model, tok = load_model("smollm2-135m")                  # real weights from a registry package, converted once
    model, tok = load_model("tiny")                          # built once from a seed, then cached
    model, tok = load_model("tiny-qwen2")                    # the zoo: a family's real tokenizer + template
    model, tok = load_model("unsloth/Llama-3.2-1B-Instruct") # any Hub id or local folder

The tiny models' text is noise; everything around them (templates, training, decoding) is the real path.
`TINY_MODELS` names them all: `tiny` (our own small tokenizer, the fast tests) and the zoo
(`backends/zoo`: tiny-llama3, tiny-qwen2, tiny-mistral, tiny-gemma, tiny-phi3). `PACKAGED_MODELS` are the
real pretrained ones (`backends/packaged.py`: smollm2-135m, gemma3-270m); `OFFLINE_MODELS` is both.
What each tiny model is: docs/training.md#design-backendsmodelspy
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends import tiny, zoo
from backends.cache import build_once, cache_dir
from backends.packaged import PACKAGED_MODELS, is_packaged, packaged_model_path
from core.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

REPO_ROOT = tiny.REPO_ROOT
TINY = "tiny"
TINY_LLAMA3 = "tiny-llama3"
ZOO = tuple(zoo.FAMILIES)  # tiny-llama3, tiny-qwen2, tiny-mistral, tiny-gemma, tiny-phi3
# The offline, randomly initialised models: built here, never downloaded.
TINY_MODELS = (TINY, *ZOO)
SMOLLM2 = "smollm2-135m"  # SmolLM2-135M-Instruct: real weights, the default model of every command
DEFAULT_MODEL = SMOLLM2
# Every model name that resolves without a hub: real weights from packages, then the random tiny ones.
OFFLINE_MODELS = (*PACKAGED_MODELS, *TINY_MODELS)


def is_tiny(name: str) -> bool:
    """True for the offline tiny models (`TINY_MODELS`): random weights, built locally."""
    return name in TINY_MODELS


def tiny_model_path(seed: int = 0, name: str = TINY) -> Path:
    """Folder of the tiny model `name` for `seed`, building it on first use (atomically: safe in parallel)."""
    if name == TINY:
        corpus = tiny.tiny_corpus()
        digest = hashlib.sha256("\n".join(corpus).encode()).hexdigest()[:10]
        target = cache_dir() / f"tiny-v{tiny.TINY_VERSION}-seed{seed}-{digest}"

        def builder(out: Path) -> None:
            tiny.build_tiny_model(out, seed=seed, corpus=corpus)
    elif name in ZOO:
        target = cache_dir() / f"{name}-{zoo.fingerprint(name)}-seed{seed}"

        def builder(out: Path) -> None:
            zoo.build(name, out, seed=seed)
    else:
        raise ValueError(f"not a tiny model: {name!r} (one of {', '.join(TINY_MODELS)})")
    return build_once(target, builder)


def resolve_model(name: str, seed: int = 0) -> str:
    """An offline model's name → its cached folder; anything else is passed through (Hub id or path)."""
    if is_packaged(name):
        return str(packaged_model_path(name))
    return str(tiny_model_path(seed, name)) if is_tiny(name) else name


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise UserError(f"cannot load tokenizer '{name}': {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        # Llama 3 ships no pad token but reserves one; fall back to EOS for other families.
        reserved = "<|finetune_right_pad_id|>"
        tokenizer.pad_token = reserved if reserved in tokenizer.get_vocab() else tokenizer.eos_token
    return tokenizer


def load_model(
    name: str, *, device: str | None = None, dtype: Any = None, adapter: str | Path | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model + tokenizer; with `adapter`, the PEFT adapter is applied on top of the base model."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    tokenizer = load_tokenizer(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=dtype)
    except OSError as exc:
        raise UserError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from None
    if is_tiny(name):
        tiny.slow_down(model, tiny.slowdown())  # 1 (no-op) unless a test or bench asks for a slowed stand-in
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise UserError(f"{adapter}: not a PEFT adapter folder (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device)
    model.eval()
    return model, tokenizer
