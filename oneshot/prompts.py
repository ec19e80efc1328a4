"""What the model sees, in training and at prediction alike: the taxonomy, k solved neighbours, the ticket.

    messages = ticket_messages(ticket, neighbours, intents)      # system, k × (user, assistant), user
    answer(intent, reply)                                         # '{"intent": "...", "reply": "..."}'
    intent_prefix(intent)                                         # '{"intent": "..."' (the answer's start)
    before, choices, after = intent_choices(intents)              # what choice scoring compares
    reply_prefix(intent)                                          # '{"intent": "...", "reply": "' (generation)

Training targets, scored choices and generation prefixes are the same bytes (`json.dumps`, default
separators), and choices are scored on the tokens of the training text (`Backend.score`'s `before` /
`after`). Why the neighbours are turns: docs/oneshot.md#design-oneshotpromptspy
"""

from __future__ import annotations

import json
from typing import Any

from oneshot.contract import TrainRow

Messages = list[dict[str, str]]

SYSTEM = (
    "You are a customer support agent. For each customer ticket, choose its intent from this list: "
    "{intents}. Then write a short, concrete, polite reply to the customer (2 to 4 sentences) that follows "
    "the policies and steps used in the example replies. Answer with JSON only: "
    '{{"intent": <one intent from the list>, "reply": <your reply>}}.'
)


def answer(intent: str, reply: str) -> str:
    return json.dumps({"intent": intent, "reply": reply}, ensure_ascii=False)


def intent_prefix(intent: str) -> str:
    """The answer up to and including the intent's closing quote: what choice scoring compares."""
    return answer(intent, "")[: -len(', "reply": ""}')]


def intent_choices(intents: list[str]) -> tuple[str, list[str], str]:
    """(before, choices, after) for `Backend.score`: each intent with its closing quote, after the answer's
    start and before the reply's key, so the scored tokens are the training answer's own there (with
    byte-level BPE the quote is part of '",', never a lone '"')."""
    before = answer("", "")[: -len('", "reply": ""}')]  # '{"intent": "'
    after = reply_prefix("")[len(before) + 1 :]  # ', "reply": "'
    return before, [intent_prefix(i)[len(before):] for i in intents], after


def reply_prefix(intent: str) -> str:
    """The answer up to the reply's opening quote: generation continues the reply from here."""
    return answer(intent, "")[: -len('"}')]


def ticket_messages(ticket: str, neighbours: list[TrainRow], intents: list[str]) -> Messages:
    """System prompt, each neighbour as a solved (user, assistant) pair, then the ticket to solve."""
    messages: Messages = [{"role": "system", "content": SYSTEM.format(intents=", ".join(intents))}]
    for row in neighbours:
        messages.append({"role": "user", "content": f"Ticket: {row.ticket}"})
        messages.append({"role": "assistant", "content": answer(row.intent, row.reply)})
    messages.append({"role": "user", "content": f"Ticket: {ticket}"})
    return messages


def training_example(row: TrainRow, neighbours: list[TrainRow], intents: list[str]) -> dict[str, Any]:
    """TRL's prompt-completion form: the loss falls on this row's answer only."""
    return {"prompt": ticket_messages(row.ticket, neighbours, intents),
            "completion": [{"role": "assistant", "content": answer(row.intent, row.reply)}]}


def parse_reply(continuation: str) -> str:
    """The reply string a generation wrote after `reply_prefix`: up to its closing quote, JSON-unescaped.

    A continuation cut off by the token budget keeps what was written.
    """
    escaped, end = False, len(continuation)
    for i, ch in enumerate(continuation):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            end = i
            break
    body = continuation[:end]
    try:
        return json.loads(f'"{body}"').strip()
    except json.JSONDecodeError:
        return body.replace('\\"', '"').replace("\\n", "\n").strip()
