"""The one place a conversation meets a model's chat template: what it accepts, how it renders, which
tokens an answer is.

    text = render(tokenizer, messages, add_generation_prompt=True)    # an inference prompt
    text = render(tokenizer, [*messages, {"role": "assistant", "content": answer}])   # a training text
    head = answer_prefix(tokenizer, messages)       # the training text up to where the answer's content starts
    span = answer_span(tokenizer, messages, answer) # training text and the answer's character span in it
    ids, mask = loss_mask(tokenizer, span)          # the loss falls on the answer + its end-of-turn token
    rows = choice_tokens(tokenizer, head, ["a", "b"], before='{"label": "', after='"}')   # (ids, scored)
    traits = template_traits(tokenizer)             # what the template refuses, learned by rendering probes

Every conversation the toolkit builds is a leading system turn and user/assistant turns. Templates differ
in what they accept: Gemma's refuses a system turn, Mistral's and Gemma's need strict user/assistant
alternation, some silently drop the system text. `conversation` rewrites the messages for the template
in hand, from what rendering sentinel conversations shows (`template_traits`), never from the model's
name: a template that refuses or drops the system turn gets its text at the start of the first user
turn; one that needs alternation gets consecutive same-role turns joined.

Answers are located by character offsets in the rendered text and tokenised together with what comes
before and after them, so the token ids a scorer reads or a loss mask covers are exactly those of the
training text (tokenising an answer on its own gives other tokens: BPE merges across its edges).
Design: docs/training.md#design-backendschatpy
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Llama 3.x templates write today's date into every system turn unless given one: a fixed date keeps
# training, scoring and generation prompts byte-identical across days (determinism for a seed).
# Templates without a date ignore it. Every render here passes it.
CHAT_TEMPLATE_KWARGS: dict[str, str] = {"date_string": "26 Jul 2024"}
# How merged turns are joined (the system text before the first user turn; consecutive user turns).
SEP = "\n\n"
_SYSTEM, _USER, _USER2, _ANSWER, _ANSWER2 = ("PROBE7q-SYSTEM", "PROBE7q-USER", "PROBE7q-USER2", "PROBE7q-ANSWER",
                                             "PROBE7q-ANSWER2")

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class TemplateTraits:
    """What a chat template does with the conversation shapes the toolkit produces."""

    system: str  # "supported" | "refused" (raises) | "dropped" (renders without the system text)
    strict_alternation: bool  # two user (or two assistant) turns in a row raise
    user_first: bool  # a conversation that opens with an assistant turn raises


_TRAITS: dict[tuple[str, str | None, str | None], TemplateTraits] = {}


def _try_render(tokenizer: Any, turns: list[tuple[str, str]], generation: bool) -> str | None:
    """The rendered text, or None where the template refuses (`raise_exception` raises TemplateError)."""
    from jinja2.exceptions import TemplateError

    try:
        return tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in turns], tokenize=False,
                                             add_generation_prompt=generation, **CHAT_TEMPLATE_KWARGS)
    except TemplateError:
        return None


def template_traits(tokenizer: Any) -> TemplateTraits:
    """Probe the tokenizer's chat template with sentinel conversations (cached per template text).

    A tokenizer without a chat template gets "supported" everywhere: rendering then fails as it would anyway.
    """
    key = (repr(tokenizer.chat_template), tokenizer.bos_token, tokenizer.eos_token)
    if key in _TRAITS:
        return _TRAITS[key]
    if not tokenizer.chat_template:
        return TemplateTraits(system="supported", strict_alternation=False, user_first=False)
    shapes = [([("system", _SYSTEM), ("user", _USER)], True),  # an inference prompt
              ([("system", _SYSTEM), ("user", _USER), ("assistant", _ANSWER)], False),  # a training text
              ([("system", _SYSTEM), ("user", _USER), ("assistant", _ANSWER), ("user", _USER2)], True)]  # k-shot
    texts = [_try_render(tokenizer, turns, generation) for turns, generation in shapes]
    if any(text is None for text in texts):
        system = "refused"
    elif all(_SYSTEM in text for text in texts):
        system = "supported"
    else:
        system = "dropped"
    strict = (_try_render(tokenizer, [("user", _USER), ("user", _USER2)], True) is None
              or _try_render(tokenizer, [("user", _USER), ("assistant", _ANSWER), ("assistant", _ANSWER2)],
                             False) is None)
    user_first = _try_render(tokenizer, [("assistant", _ANSWER), ("user", _USER)], True) is None
    _TRAITS[key] = TemplateTraits(system=system, strict_alternation=strict, user_first=user_first)
    return _TRAITS[key]


def conversation(tokenizer: Any, messages: Messages) -> Messages:
    """`messages` (an optional leading system turn, then user/assistant turns) as this template accepts them.

    Raises:
        ValueError: no rewrite keeps the conversation's meaning (it opens with an assistant turn and the
            template refuses that).
    """
    traits = template_traits(tokenizer)
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    turns = [dict(m) for m in (messages[1:] if system is not None else messages)]
    if traits.strict_alternation:
        joined: Messages = []
        for turn in turns:
            if joined and joined[-1]["role"] == turn["role"]:
                joined[-1]["content"] += SEP + turn["content"]
            else:
                joined.append(turn)
        turns = joined
    if traits.user_first and turns and turns[0]["role"] != "user":
        raise ValueError("this model's chat template needs the conversation to open with a user turn")
    if system is None:
        return turns
    if traits.system == "supported":
        return [{"role": "system", "content": system}, *turns]
    if turns and turns[0]["role"] == "user":
        turns[0]["content"] = system + SEP + turns[0]["content"]
        return turns
    return [{"role": "user", "content": system}, *turns]


def render(tokenizer: Any, messages: Messages, *, add_generation_prompt: bool = False) -> str:
    """`messages` through the tokenizer's own chat template, adapted to it first (`conversation`)."""
    return tokenizer.apply_chat_template(conversation(tokenizer, messages), tokenize=False,
                                         add_generation_prompt=add_generation_prompt, **CHAT_TEMPLATE_KWARGS)


@dataclass(frozen=True)
class AnswerSpan:
    """A training text and where its last assistant turn's content lies in it (character offsets)."""

    text: str
    start: int
    end: int


def _sentinel_split(tokenizer: Any, prompt: Messages) -> tuple[str, str]:
    """(text before, text after) the answer's content in the training text of `prompt` + an answer."""
    text = render(tokenizer, [*prompt, {"role": "assistant", "content": _ANSWER}])
    at = text.rindex(_ANSWER)
    return text[:at], text[at + len(_ANSWER):]


def answer_prefix(tokenizer: Any, prompt: Messages) -> str:
    """The training text of `prompt` up to where an assistant answer's content starts.

    Usually the generation prompt (`render(..., add_generation_prompt=True)`); not always: Mistral's
    training text has a space between `[/INST]` and the answer, which its generation prompt leaves to
    the model. Choice scoring and forced answer prefixes continue from here, as training did.
    """
    return _sentinel_split(tokenizer, prompt)[0]


def answer_span(tokenizer: Any, prompt: Messages, answer: str) -> AnswerSpan:
    """The training text of `prompt` + the assistant `answer`, and where the answer's content is in it."""
    head, tail = _sentinel_split(tokenizer, prompt)
    text = render(tokenizer, [*prompt, {"role": "assistant", "content": answer}])
    if not (text.startswith(head) and text.endswith(tail)):
        raise ValueError("the chat template renders this answer's turn unlike its other turns")
    return AnswerSpan(text=text, start=len(head), end=len(text) - len(tail))


def encode(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and their character spans: rendered text already holds its BOS, so none is added."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(span) for span in enc["offset_mapping"]]


def covering(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """[first, last) indices of the tokens whose characters overlap [start, end): tokens that straddle
    an edge are included (they are what the model reads or writes there)."""
    first = next(i for i, (a, b) in enumerate(offsets) if b > start)
    last = max(i for i, (a, b) in enumerate(offsets) if a < end) + 1
    return first, max(last, first + 1)


def loss_mask(tokenizer: Any, span: AnswerSpan) -> tuple[list[int], list[int]]:
    """(token ids of the training text, 1 on the tokens the loss falls on).

    The loss falls on the answer's content and the one token after it, the template's end-of-turn marker
    (`<|eot_id|>`, `<|im_end|>`, `</s>`, `<end_of_turn>`, `<|end|>`): the model learns to say the answer
    and stop, and nothing the template adds later (Qwen's and Gemma's newline, Phi-3's `<|endoftext|>`).
    """
    ids, offsets = encode(tokenizer, span.text)
    first, last = covering(offsets, span.start, span.end)
    last = min(last + 1, len(ids)) if span.end < len(span.text) else last
    return ids, [int(first <= i < last) for i in range(len(ids))]


def choice_tokens(tokenizer: Any, context: str, choices: list[str], *, before: str = "",
                  after: str = "") -> list[tuple[list[int], int]]:
    """For each choice, the ids of `context + before + choice + after` up to the choice's last token,
    and how many of the last ids are the choice's: (ids, n scored).

    The text is tokenised whole and split by character offsets (lm-evaluation-harness's `_encode_pair`,
    without its whitespace rule: a chat prompt ends in a newline that belongs to the template): the scored
    tokens are exactly those the training text has there, including a token that straddles the choice's
    edge. `after` is text that follows the choice in the training answer (it decides how the choice's
    last characters merge); it is never scored.

    Text after a special token tokenises independently of the text before it, so the context is
    tokenised once up to its last special token and only the rest once per choice (checked against a
    whole encode of the first choice; any difference falls back to whole encodes).
    """
    lead = context + before
    ids, offsets = encode(tokenizer, lead)
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    cut = max((i for i, token in enumerate(ids) if token in special), default=0)
    cut_char = offsets[cut][0] if ids else 0
    head = ids[:cut]

    def split(tail_ids: list[int], tail_offsets: list[tuple[int, int]], shift: int, choice: str):
        spans = [(a + shift, b + shift) for a, b in tail_offsets]
        first, last = covering(spans, len(lead), len(lead) + len(choice))
        return tail_ids[:last], last - first

    rows: list[tuple[list[int], int]] = []
    tails = [lead[cut_char:] + c + after for c in choices]
    enc = tokenizer(tails, add_special_tokens=False, return_offsets_mapping=True)
    for i, choice in enumerate(choices):
        if not choice:
            raise ValueError(f"an empty choice cannot be scored: {choices}")
        tail, n = split(enc["input_ids"][i], enc["offset_mapping"][i], cut_char, choice)
        rows.append((head + tail, n))
    whole_ids, whole_offsets = encode(tokenizer, lead + choices[0] + after)
    if split(whole_ids, whole_offsets, 0, choices[0]) != rows[0]:
        rows = []
        for choice in choices:
            whole_ids, whole_offsets = encode(tokenizer, lead + choice + after)
            rows.append(split(whole_ids, whole_offsets, 0, choice))
    return rows
