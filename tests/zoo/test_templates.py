"""Our chat templates render each family's documented format exactly, refuse what the family refuses, and
`backends.chat` adapts every conversation to them by what the template does, never by the model's name."""

from __future__ import annotations

import pytest
from jinja2.exceptions import TemplateError

from backends import chat
from tests.zoo.conftest import loaded

pytestmark = pytest.mark.zoo

CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's 2+2?"},
    {"role": "assistant", "content": "The answer is 4."},
]
# Each family's documented format for CONVERSATION (Gemma: without the system turn it refuses), and the
# generation prompt for CONVERSATION[:2] (Gemma: CONVERSATION[1:2]).
RENDERED = {
    "tiny-llama3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "You are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat's 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nThe answer is 4.<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "tiny-qwen2": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat's 2+2?<|im_end|>\n"
        "<|im_start|>assistant\nThe answer is 4.<|im_end|>\n",
        "<|im_start|>assistant\n"),
    "tiny-mistral": ("<s>[INST] You are a helpful assistant.\n\nWhat's 2+2?[/INST] The answer is 4.</s>", "[/INST]"),
    "tiny-gemma": (
        "<bos><start_of_turn>user\nWhat's 2+2?<end_of_turn>\n"
        "<start_of_turn>model\nThe answer is 4.<end_of_turn>\n",
        "<start_of_turn>model\n"),
    "tiny-phi3": (
        "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nWhat's 2+2?<|end|>\n"
        "<|assistant|>\nThe answer is 4.<|end|>\n<|endoftext|>",
        "<|assistant|>\n"),
}
TRAITS = {
    "tiny-llama3": chat.TemplateTraits("supported", False, False),
    "tiny-qwen2": chat.TemplateTraits("supported", False, False),
    "tiny-mistral": chat.TemplateTraits("supported", True, True),
    "tiny-gemma": chat.TemplateTraits("refused", True, True),
    "tiny-phi3": chat.TemplateTraits("supported", False, False),
}
KWARGS = chat.CHAT_TEMPLATE_KWARGS


def test_each_template_renders_its_documented_format(family):
    _, tok = loaded(family)
    full, generation = RENDERED[family]
    messages = CONVERSATION[1:] if family == "tiny-gemma" else CONVERSATION
    assert tok.apply_chat_template(messages, tokenize=False, **KWARGS) == full
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True, **KWARGS)
    # The generation prompt is the training text up to the answer (Mistral: [/INST], then " " + answer).
    assert prompt.endswith(generation) and full.startswith(prompt)
    assert full[len(prompt):].lstrip(" ").startswith("The answer is 4.")
    # Rendered text holds its special tokens whole, once: one BOS, no doubled one.
    ids = tok(full, add_special_tokens=False)["input_ids"]
    if tok.bos_token_id is not None and full.startswith(tok.bos_token):
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_llama3_dates_its_system_turn_with_a_fixed_day():
    """Meta's template writes today's date unless given one; ours defaults to a fixed date (and every
    render passes CHAT_TEMPLATE_KWARGS), so training and scoring text never changes from day to day."""
    _, tok = loaded("tiny-llama3")
    assert "Today Date: 26 Jul 2024\n" in tok.apply_chat_template(CONVERSATION[1:2], tokenize=False)
    assert "Today Date: 01 Jan 2025\n" in tok.apply_chat_template(CONVERSATION[1:2], tokenize=False,
                                                                  date_string="01 Jan 2025")


def test_gemma_and_mistral_refuse_what_they_refuse():
    _, gemma = loaded("tiny-gemma")
    with pytest.raises(TemplateError, match="System role not supported"):
        gemma.apply_chat_template(CONVERSATION, tokenize=False)
    with pytest.raises(TemplateError, match="Conversation roles must alternate user/assistant/user/assistant/"):
        gemma.apply_chat_template([CONVERSATION[1], CONVERSATION[1]], tokenize=False)
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        gemma.apply_chat_template(CONVERSATION[2:], tokenize=False)
    _, mistral = loaded("tiny-mistral")
    with pytest.raises(TemplateError, match="After the optional system message, conversation roles must alternate"):
        mistral.apply_chat_template([CONVERSATION[1], CONVERSATION[1]], tokenize=False)


def test_traits_come_from_rendering_the_template(family):
    _, tok = loaded(family)
    assert chat.template_traits(tok) == TRAITS[family]


K_SHOT = [{"role": "system", "content": "Label the ticket."}, {"role": "user", "content": "Ticket: a"},
          {"role": "user", "content": "Order #4411."}, {"role": "assistant", "content": "refund"},
          {"role": "user", "content": "Ticket: b"}]


def test_every_conversation_renders_with_its_system_text(family):
    """The toolkit's shapes (system + k-shot turns, two user turns in a row) render on every family, and
    the system text is in every render (Gemma: at the start of the first user turn)."""
    _, tok = loaded(family)
    text = chat.render(tok, K_SHOT, add_generation_prompt=True)
    assert "Label the ticket." in text and "Ticket: b" in text
    adapted = chat.conversation(tok, K_SHOT)
    if family == "tiny-gemma":
        assert [m["role"] for m in adapted] == ["user", "assistant", "user"]
        assert adapted[0]["content"] == "Label the ticket.\n\nTicket: a\n\nOrder #4411."
        assert text.startswith("<bos><start_of_turn>user\nLabel the ticket.\n\nTicket: a\n\nOrder #4411.<end_of_turn>")
    elif family == "tiny-mistral":
        assert [m["role"] for m in adapted] == ["system", "user", "assistant", "user"]
    else:
        assert adapted == K_SHOT


def test_a_template_that_drops_the_system_text_gets_it_merged():
    """A template that renders without the system turn (the original Phi-3 mini's did, silently) is
    detected by rendering, and the system text goes into the first user turn."""
    from backends.models import load_tokenizer

    tok = load_tokenizer("tiny-phi3")  # a fresh copy: the template is replaced below
    tok.chat_template = ("{% for m in messages %}{% if m['role'] != 'system' %}<|{{ m['role'] }}|>\n"
                         "{{ m['content'] }}<|end|>\n{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    assert chat.template_traits(tok) == chat.TemplateTraits("dropped", False, False)
    assert chat.render(tok, CONVERSATION[:2], add_generation_prompt=True) == (
        "<|user|>\nYou are a helpful assistant.\n\nWhat's 2+2?<|end|>\n<|assistant|>\n")


def test_an_assistant_first_conversation_is_refused_where_the_template_refuses_it():
    _, gemma = loaded("tiny-gemma")
    with pytest.raises(ValueError, match="open with a user turn"):
        chat.conversation(gemma, [CONVERSATION[0], CONVERSATION[2], CONVERSATION[1]])
    _, qwen = loaded("tiny-qwen2")
    assert [m["role"] for m in chat.conversation(qwen, CONVERSATION[2:])] == ["assistant"]
