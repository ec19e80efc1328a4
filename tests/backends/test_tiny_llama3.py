"""`tiny-llama3`: the offline model with the real Llama 3.2 Instruct vocabulary, template and tying."""

from __future__ import annotations

import random

import pytest

from backends.models import TINY_LLAMA3, is_tiny, resolve_model
from backends.tiny_llama3 import build_tiny_llama3, special_tokens

# meta-llama/Llama-3.2-1B-Instruct's rendering of this conversation with date_string="26 Jul 2024".
CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's 2+2?"},
    {"role": "assistant", "content": "The answer is 4."},
]
LLAMA32_RENDERED = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    "You are a helpful assistant.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nWhat's 2+2?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nThe answer is 4.<|eot_id|>"
)


def test_vocabulary_is_llama3_sized_with_special_tokens_at_their_ids(tiny_llama3):
    model, tokenizer = tiny_llama3
    assert len(tokenizer) == 128_256 == model.config.vocab_size
    assert model.get_input_embeddings().weight.shape[0] == 128_256
    expected = {
        "<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|reserved_special_token_0|>": 128002,
        "<|reserved_special_token_1|>": 128003, "<|finetune_right_pad_id|>": 128004,
        "<|reserved_special_token_2|>": 128005, "<|start_header_id|>": 128006, "<|end_header_id|>": 128007,
        "<|eom_id|>": 128008, "<|eot_id|>": 128009, "<|python_tag|>": 128010,
        "<|reserved_special_token_3|>": 128011, "<|reserved_special_token_247|>": 128255,
    }
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in expected} == expected
    assert tokenizer.convert_ids_to_tokens(list(range(128000, 128256))) == special_tokens()
    assert len(set(special_tokens())) == 256
    assert max(tokenizer.get_vocab().values()) == 128_255
    assert not any(t.startswith("<|") and t.endswith("|>") for t, i in tokenizer.get_vocab().items() if i < 128000)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (128000, 128009, 128004)


def test_generation_config_stops_on_all_three_llama3_end_tokens(tiny_llama3):
    model, _ = tiny_llama3
    assert sorted(model.generation_config.eos_token_id) == [128001, 128008, 128009]
    assert model.generation_config.pad_token_id == 128004
    assert model.generation_config.bos_token_id == 128000


def test_chat_template_renders_exactly_as_llama32_instruct(tiny_llama3):
    _, tokenizer = tiny_llama3
    assert tokenizer.apply_chat_template(CONVERSATION, tokenize=False, date_string="26 Jul 2024") == LLAMA32_RENDERED
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True,
                                           date_string="26 Jul 2024")
    assert prompt == LLAMA32_RENDERED.removesuffix("The answer is 4.<|eot_id|>")
    # No system message: the preamble is still there, with an empty system text.
    no_system = tokenizer.apply_chat_template(CONVERSATION[1:2], tokenize=False, date_string="26 Jul 2024")
    assert no_system == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat's 2+2?<|eot_id|>"
    )
    ids = tokenizer.apply_chat_template(CONVERSATION, tokenize=True, date_string="26 Jul 2024",
                                        return_dict=True)["input_ids"]
    assert ids[:2] == [128000, 128006] and ids[-1] == 128009, "one BOS (no double BOS), special tokens whole"
    assert ids.count(128000) == 1 and ids.count(128009) == 3


def test_chat_template_dates_today_by_default_like_the_real_one(tiny_llama3):
    import datetime as dt

    _, tokenizer = tiny_llama3
    before = dt.datetime.now().strftime("%d %b %Y")
    text = tokenizer.apply_chat_template(CONVERSATION[1:2], tokenize=False)
    after = dt.datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {before}\n" in text or f"Today Date: {after}\n" in text


def test_plain_encoding_starts_with_bos_as_llama3_does(tiny_llama3):
    _, tokenizer = tiny_llama3
    assert tokenizer("Hi")["input_ids"][0] == 128000
    assert 128000 not in tokenizer("Hi", add_special_tokens=False)["input_ids"]


def test_embeddings_are_tied(tiny_llama3, tiny_llama3_path):
    from safetensors import safe_open

    model, _ = tiny_llama3
    assert model.config.tie_word_embeddings is True
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    with safe_open(tiny_llama3_path / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in set(f.keys()), "tied: the head is saved once, as the embedding"
    n_params = sum(p.numel() for p in model.parameters())
    assert 128_256 * 64 < n_params < 10_000_000


def _random_text(rng: random.Random, n: int) -> str:
    """Arbitrary Unicode scalar values (no surrogates), whitespace and control characters included."""
    pools = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = pools[rng.randrange(len(pools))]
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def test_any_utf8_text_round_trips(tiny_llama3):
    _, tokenizer = tiny_llama3
    rng = random.Random(0)
    texts = [
        "Profit rose 5% in Q3 , the company said .", "Lợi nhuận quý 3 tăng mạnh 🚀🚀", "  leading\tand\r\ntrailing  ",
        "\x00\x01 control", "a" * 300, "'s 're I'M don't", "数字 1234567 ٣٤٥", "",
    ] + [_random_text(rng, rng.randint(1, 80)) for _ in range(200)]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert all(0 <= i < 128_000 for i in ids), "plain text never yields a special token"
        assert tokenizer.decode(ids) == text


def test_our_text_tokenises_into_words_not_bytes(tiny_llama3, samples_dir):
    import json

    _, tokenizer = tiny_llama3
    texts = [json.loads(line)["text"] for line in (samples_dir / "fin_sentiment" / "en.jsonl").read_text().splitlines()
             if line.strip()]
    n_chars = sum(len(t) for t in texts)
    n_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert n_chars / n_tokens > 3.0, f"{n_chars / n_tokens:.2f} characters per token"
    pieces = tokenizer.tokenize("the company said")
    assert pieces == ["the", "Ġcompany", "Ġsaid"]


def test_resolves_by_name_and_builds_deterministically(tmp_path, tiny_llama3_path):
    import torch
    from safetensors.torch import load_file

    assert is_tiny(TINY_LLAMA3) and is_tiny("tiny") and not is_tiny("meta-llama/Llama-3.2-1B-Instruct")
    assert resolve_model(TINY_LLAMA3) == str(tiny_llama3_path)
    build_tiny_llama3(tmp_path / "a", seed=0)
    build_tiny_llama3(tmp_path / "b", seed=1)
    a, b, cached = (load_file(p / "model.safetensors") for p in (tmp_path / "a", tmp_path / "b", tiny_llama3_path))
    assert a.keys() == cached.keys() and all(torch.equal(a[k], cached[k]) for k in a), "same seed, same weights"
    assert not torch.equal(a["model.embed_tokens.weight"], b["model.embed_tokens.weight"])
    tok = [(d / "tokenizer.json").read_bytes() for d in (tmp_path / "a", tmp_path / "b", tiny_llama3_path)]
    assert tok[0] == tok[1] == tok[2], "the tokenizer depends on our corpus alone"


@pytest.mark.parametrize("prompt", ["Profit rose", ""])
def test_generates_and_stops_within_budget(tiny_llama3, prompt):
    model, tokenizer = tiny_llama3
    batch = tokenizer([prompt], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 4
