"""Records → messages → the model's own chat template → tokens and loss mask: exactly what is trained on.

    rows = to_examples(records, task, seed=0)      # [{"prompt": [system, user], "completion": [assistant]}]
    text = render(tokenizer, row)                  # the chat template's string, special tokens included
    row = tokenize(tokenizer, rows[0])             # {"input_ids", "completion_mask"}: what SFTTrainer gets

The loss falls on the assistant answer and its end-of-turn token only (`backends.chat.loss_mask`: found
by character offsets in the rendered text, whatever the template adds around it). Messages go through
`backends.chat`, which adapts them to the template (a system turn merged into the first user turn where
the template refuses one). The instruction paraphrase of each record is picked from the seed and the
record id: stable across runs, varied across records.
"""

from __future__ import annotations

import hashlib
from typing import Any

from backends import chat
from core.records import Record
from core.task_spec import Task


def variant_for(record_id: str, seed: int) -> int:
    """A deterministic, well-spread instruction variant index (the task takes it modulo its count)."""
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{record_id}".encode()).digest()[:4], "big")


def to_messages(record: Record, task: Task, seed: int = 0) -> list[dict[str, str]]:
    return task.training_messages(record.text, record.lang, record.labels, variant=variant_for(record.id, seed),
                                  source=record.provenance.get("dataset"))


def to_example(record: Record, task: Task, seed: int = 0) -> dict[str, Any]:
    messages = to_messages(record, task, seed)
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def to_examples(records: list[Record], task: Task, seed: int = 0) -> list[dict[str, Any]]:
    return [to_example(r, task, seed) for r in records]


def render(tokenizer: Any, example: dict[str, Any]) -> str:
    """The full training string through the model's chat template (no tokenisation)."""
    return chat.render(tokenizer, example["prompt"] + example["completion"])


def loss_tokens(tokenizer: Any, example: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(token ids of the training text, 1 where the loss falls): the completion's answer and the
    end-of-turn token after it."""
    [answer] = example["completion"]  # one assistant turn: the answer trained on
    return chat.loss_mask(tokenizer, chat.answer_span(tokenizer, example["prompt"], answer["content"]))


def tokenize(tokenizer: Any, example: dict[str, Any]) -> dict[str, list[int]]:
    """A tokenised training row for TRL's `SFTTrainer` (it builds the labels from `completion_mask`)."""
    ids, mask = loss_tokens(tokenizer, example)
    return {"input_ids": ids, "completion_mask": mask}


def show(records: list[Record], task: Task, tokenizer: Any, n: int = 3, seed: int = 0) -> str:
    """`n` examples in both forms: messages, then the chat-template string with every special token,
    token count, and the part the loss is computed on."""
    blocks = []
    for i, record in enumerate(records[:n], start=1):
        example = to_example(record, task, seed)
        lines = [f"=== example {i}/{min(n, len(records))}  id={record.id} lang={record.lang} source={record.source}",
                 "--- messages"]
        for msg in example["prompt"] + example["completion"]:
            lines.append(f"[{msg['role']}] {msg['content']}")
        ids, mask = loss_tokens(tokenizer, example)
        lines.append(f"--- chat template ({len(ids)} tokens; loss on {sum(mask)})")
        lines.append(render(tokenizer, example))
        trained = [i for i, on in zip(ids, mask, strict=True) if on]
        lines.append("--- loss on: " + repr(tokenizer.decode(trained, skip_special_tokens=False)))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
