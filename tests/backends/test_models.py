from __future__ import annotations

import pytest

from backends.tiny import SPECIAL_TOKENS, build_tiny_model


def test_tiny_model_builds_twice_to_identical_weights(tmp_path):
    import torch
    from safetensors.torch import load_file

    build_tiny_model(tmp_path / "a", seed=7)
    build_tiny_model(tmp_path / "b", seed=7)
    build_tiny_model(tmp_path / "c", seed=8)
    a, b, c = (load_file(tmp_path / d / "model.safetensors") for d in "abc")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a), "another seed gives other weights"
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_tiny_model_is_small_llama_and_generates(tiny):
    model, tokenizer = tiny
    assert model.config.model_type == "llama"
    n_params = sum(p.numel() for p in model.parameters())
    assert 300_000 < n_params < 10_000_000
    batch = tokenizer(["Profit rose"], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > batch["input_ids"].shape[1]


def test_tiny_chat_template_renders_every_special_token(tiny):
    _, tokenizer = tiny
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "positive"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\npositive<|eot_id|>"
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for token in ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]:
        assert tokenizer.convert_tokens_to_ids(token) in ids, f"{token} is one token"
    assert set(SPECIAL_TOKENS) <= set(tokenizer.get_vocab())
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


@pytest.mark.parametrize("name", ["no/such-model-anywhere"])
def test_unknown_model_is_a_clear_error(name):
    from backends.models import load_model
    from core.errors import UserError

    with pytest.raises(UserError, match="cannot load"):
        load_model(name, device="cpu")
