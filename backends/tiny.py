"""`tiny`: the smallest offline model, built from a seed on our own text (fast tests).

    build_tiny_model(folder, seed=0)   # a 4k byte-level BPE tokenizer trained on tiny_corpus(), random Llama weights

A randomly initialised Llama-architecture LM (~3M parameters) with a Llama-3-style chat template and its
special tokens. `backends.models.load_model("tiny")` builds it once per seed and caches it.

Test and bench device: `SEEDLOOP_TINY_SLOWDOWN=N` makes every forward pass of a loaded tiny model
take N times as long (training steps too), a stand-in for a big model's speed on a CPU.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_VERSION = 1
SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|finetune_right_pad_id|>",
]
# Llama 3's chat template, minus the date/tool preamble: the same header and turn tokens.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + (message['content'] | trim) + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
TINY_SHAPE = {
    "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 4, "max_position_embeddings": 2048,
}
TINY_VOCAB = 4096
SLOWDOWN_ENV = "SEEDLOOP_TINY_SLOWDOWN"


def slowdown() -> float:
    """The factor of `SEEDLOOP_TINY_SLOWDOWN` (1: the tiny model at its own speed)."""
    try:
        return max(1.0, float(os.environ.get(SLOWDOWN_ENV) or 1))
    except ValueError:
        return 1.0


def slow_down(model: Any, factor: float) -> None:
    """TEST/BENCH DEVICE: each forward pass of `model` sleeps until it took `factor` times as long.

    In training mode the sleep stands for the backward pass too (about twice the forward's work),
    so a training step is slowed by about the same factor as a scoring or decoding step.
    """
    if factor <= 1:
        return
    started: list[float] = []

    def before(module: Any, args: Any) -> None:
        started.append(time.perf_counter())

    def after(module: Any, args: Any, output: Any) -> None:
        took = time.perf_counter() - started.pop()
        time.sleep((factor - 1) * took * (3 if module.training else 1))

    model.register_forward_pre_hook(before)
    model.register_forward_hook(after)


def tiny_corpus() -> list[str]:
    """Our own text the tiny tokenizer is trained on: the sample files and the task specs."""
    texts: list[str] = []
    samples = REPO_ROOT / "data" / "samples"
    for path in sorted(samples.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.extend(str(v) for k, v in row.items() if k != "id" and isinstance(v, str))
    for path in sorted((REPO_ROOT / "tasks").glob("*.yaml")):
        texts.append(path.read_text(encoding="utf-8"))
    return texts


def build_tiny_model(out: Path, *, seed: int = 0, corpus: list[str] | None = None) -> None:
    """Train the tokenizer, initialise the Llama weights from `seed` and save both to `out`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = corpus if corpus is not None else tiny_corpus()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>", model_max_length=TINY_SHAPE["max_position_embeddings"],
    )
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = LlamaConfig(
        vocab_size=len(tokenizer), tie_word_embeddings=False, bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=ids["<|eot_id|>"], pad_token_id=ids["<|finetune_right_pad_id|>"], **TINY_SHAPE,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=[ids["<|eot_id|>"], ids["<|end_of_text|>"]],
        pad_token_id=config.pad_token_id,
    ).save_pretrained(out)
