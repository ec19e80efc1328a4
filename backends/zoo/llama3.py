"""`tiny-llama3`: Llama 3.2 Instruct's real tokenizer and chat format around random tiny weights.

    build(Path("out"), seed=0)        # tokenizer + weights into a folder (backends.models caches it)

Tokenizer: Meta's `llama_models/llama3/tokenizer.model` (package `llama-models`, 128,000 tiktoken ranks)
converted to a byte-level BPE with Llama 3's split regex, plus the 256 special tokens at their ids
(128,256 in all). Weights: meta-llama/Llama-3.2-1B-Instruct's architecture features (tied embeddings,
llama3 RoPE scaling) at 2 layers × 64. What matches and what does not: docs/training.md#the-model-zoo
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.zoo import common, convert

VERSION = 2  # 1 was a BPE trained on our corpus with Llama 3's ids; 2 is Meta's own tokenizer file
# Llama 3.1/3.2 tokenizer.json names; every other id is <|reserved_special_token_N|> in id order
# (llama_models itself calls 128005 <|step_id|> and 128011 <|image|>: same ids, other names).
NAMED = {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128004: "<|finetune_right_pad_id|>",
         128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128008: "<|eom_id|>", 128009: "<|eot_id|>",
         128010: "<|python_tag|>"}
BOS_ID, EOS_IDS, PAD_ID = 128000, [128001, 128008, 128009], 128004


def special_tokens() -> list[str]:
    """The 256 special tokens in id order, 128000 first."""
    out, reserved = [], 0
    for token_id in range(128000, 128256):
        if token_id in NAMED:
            out.append(NAMED[token_id])
        else:
            out.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return out


def tokenizer(model: str = "tiny-llama3") -> Any:
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    ranks = convert.load_tiktoken(convert.package_file("llama-models", "llama_models/llama3/tokenizer.model",
                                                       model=model))
    tok = convert.byte_level_bpe(ranks, convert.LLAMA3_SPLIT, nfc=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens()])
    bos = NAMED[BOS_ID]
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A:0 {bos}:1 $B:1",
                                      special_tokens=[(bos, BOS_ID)]),
    ])
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=NAMED[128009],
        # Llama 3.2 ships no pad token; the one it reserves for fine-tuning is <|finetune_right_pad_id|>.
        pad_token=NAMED[PAD_ID], model_max_length=131072,
        # Meta ships clean_up_tokenization_spaces=True, which breaks decode round trips ("a ." -> "a.").
        clean_up_tokenization_spaces=False,
    )
    out.chat_template = common.template("llama3")
    return out


def config() -> Any:
    from transformers import LlamaConfig

    # No pad_token_id, as in Llama 3.2's config.json (the generation config names one).
    return LlamaConfig(vocab_size=128256, tie_word_embeddings=True, bos_token_id=BOS_ID, eos_token_id=EOS_IDS,
                       max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu",
                       rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 8192},
                       **common.tiny_shape(64))


def build(out: Path, *, seed: int = 0) -> None:
    common.save(out, tokenizer(), config(),
                {"bos_token_id": BOS_ID, "eos_token_id": EOS_IDS, "pad_token_id": PAD_ID}, seed=seed)
