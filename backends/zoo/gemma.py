"""`tiny-gemma`: Gemma 2 IT's chat format and special strings on a real 32k SentencePiece (a PAIRING).

    build(Path("out"), seed=0)

Gemma's own 256k SentencePiece ships in no registry package. The pairing takes Mistral 7B v0.1's
`mistral_common/data/tokenizer.model.v1` (32,000 pieces, byte fallback), tokenises it the way Gemma's
does (no dummy prefix: spaces become "▁" in place), and adds Gemma's special strings as new tokens.
Real: the template and what it refuses (a system turn, turns that do not alternate), the special
strings and their roles (BOS added, EOS, pad, end of turn), Gemma2ForCausalLM's features (softcapping,
sliding window, tied embeddings). Not real: every token id (Gemma's <start_of_turn> is 106; here 32003).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.zoo import common, convert

VERSION = 1
ADDED = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]  # at 32000..32004


def tokenizer(model: str = "tiny-gemma") -> Any:
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    tok = convert.sentencepiece_bpe(convert.package_file("mistral-common", "mistral_common/data/tokenizer.model.v1",
                                                         model=model), dummy_prefix=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ADDED])
    tok.post_processor = convert.bos_post_processor("<bos>", tok.token_to_id("<bos>"))  # Gemma adds BOS
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>",
        model_max_length=8192, clean_up_tokenization_spaces=False,
    )
    out.chat_template = common.template("gemma")
    return out


def config(tok: Any) -> Any:
    from transformers import Gemma2Config

    ids = tok.convert_tokens_to_ids
    shape = common.tiny_shape(64)
    return Gemma2Config(vocab_size=len(tok), tie_word_embeddings=True, bos_token_id=ids("<bos>"),
                        eos_token_id=[ids("<eos>"), ids("<end_of_turn>")], pad_token_id=ids("<pad>"),
                        query_pre_attn_scalar=shape["head_dim"], sliding_window=4096, max_position_embeddings=8192,
                        final_logit_softcapping=30.0, attn_logit_softcapping=50.0, **shape)


def build(out: Path, *, seed: int = 0) -> None:
    tok = tokenizer()
    ids = tok.convert_tokens_to_ids
    common.save(out, tok, config(tok), {"bos_token_id": ids("<bos>"), "pad_token_id": ids("<pad>"),
                                        "eos_token_id": [ids("<eos>"), ids("<end_of_turn>")]}, seed=seed)
