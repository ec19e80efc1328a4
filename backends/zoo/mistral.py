"""`tiny-mistral`: Mistral 7B Instruct v0.3's real tokenizer and chat format around tiny random weights.

    build(Path("out"), seed=0)

Tokenizer: `mistral_common/data/mistral_instruct_tokenizer_240323.model.v3` (package `mistral-common`,
SentencePiece BPE, 32,768 pieces, byte fallback); ids match mistral-common's own encoding of whole chats.
No pad token, as shipped. Weights: Mistral-7B-Instruct-v0.3's features (untied, no sliding window) at
2 layers × 64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.zoo import common, convert

VERSION = 1
FILE = "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3"


def tokenizer(model: str = "tiny-mistral") -> Any:
    from transformers import PreTrainedTokenizerFast

    # This v3 file names ids 10..13 [IMG] [PREFIX] [MIDDLE] [SUFFIX] and 751..770 [REFERENCE_DOC_n];
    # Mistral-7B v0.3 calls every unused control id n >= 10 "[control_{n-2}]" (the file does for 14..750).
    rename = {i: f"[control_{i - 2}]" for i in [*range(10, 14), *range(751, 771)]}
    tok = convert.sentencepiece_bpe(convert.package_file("mistral-common", FILE, model=model), rename=rename)
    tok.post_processor = convert.bos_post_processor("<s>", 1)
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token=None,  # Mistral ships none (backends.models.load_tokenizer falls back to </s>)
        model_max_length=32768, clean_up_tokenization_spaces=False,
    )
    out.chat_template = common.template("mistral")
    return out


def config() -> Any:
    from transformers import MistralConfig

    return MistralConfig(vocab_size=32768, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                         max_position_embeddings=32768, rms_norm_eps=1e-5, sliding_window=None,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **common.tiny_shape(64))


def build(out: Path, *, seed: int = 0) -> None:
    common.save(out, tokenizer(), config(), {"bos_token_id": 1, "eos_token_id": 2}, seed=seed)
