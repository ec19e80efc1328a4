"""`tiny-phi3`: Phi-3 mini instruct's chat format and special-token ids on a real 32k SentencePiece (a PAIRING).

    build(Path("out"), seed=0)

Phi-3 mini's tokenizer is Llama 2's 32,000 SentencePiece plus 11 added tokens; Llama 2's file ships in
no registry package, so the pairing takes Mistral 7B v0.1's (`mistral_common/data/tokenizer.model.v1`:
also 32,000 byte-fallback pieces with <unk> 0, <s> 1, </s> 2) and adds Phi-3's tokens at their real ids
32000..32010. Real: the template, the special strings and ids, vocab size 32,064, BOS/EOS/pad conventions.
Not real: the ids of ordinary text (Mistral's merges, not Llama 2's). Weights: Phi3ForCausalLM (fused
qkv and gate/up projections, no grouped-query attention, untied) at 2 layers × 64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.zoo import common, convert

VERSION = 1
ADDED = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
         "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
ENDOFTEXT, ASSISTANT, END = 32000, 32001, 32007


def tokenizer(model: str = "tiny-phi3") -> Any:
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    tok = convert.sentencepiece_bpe(convert.package_file("mistral-common", "mistral_common/data/tokenizer.model.v1",
                                                         model=model))
    # <|endoftext|> plain; the others eat the whitespace after them (rstrip), so "<|end|>\n" is one token.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, rstrip=t != "<|endoftext|>")
                            for t in ADDED])
    # The updated Phi-3 mini (and Phi-3.5) adds no BOS, and its template writes none.
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|endoftext|>", unk_token="<unk>",
        pad_token="<|endoftext|>", model_max_length=4096, clean_up_tokenization_spaces=False,
    )
    out.chat_template = common.template("phi3")
    return out


def config() -> Any:
    from transformers import Phi3Config

    shape = common.tiny_shape(64)
    shape["num_key_value_heads"] = shape["num_attention_heads"]  # Phi-3 mini has no grouped-query attention
    del shape["head_dim"]
    return Phi3Config(vocab_size=32064, tie_word_embeddings=False, bos_token_id=1, eos_token_id=ENDOFTEXT,
                      pad_token_id=ENDOFTEXT, max_position_embeddings=4096, original_max_position_embeddings=4096,
                      rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **shape)


def build(out: Path, *, seed: int = 0) -> None:
    common.save(out, tokenizer(), config(),
                {"bos_token_id": 1, "eos_token_id": [ENDOFTEXT, ASSISTANT, END], "pad_token_id": ENDOFTEXT},
                seed=seed)
