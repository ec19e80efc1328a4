"""Records → messages → the model's own chat template: exactly what the model is trained on.

    rows = to_examples(records, task, seed=0)      # [{"prompt": [system, user], "completion": [assistant]}]
    text = render(tokenizer, row)                  # the chat template's string, special tokens included

The prompt-completion conversational form is what TRL's `SFTTrainer` turns into a `completion_mask`,
so the loss falls on the assistant turn only. The instruction paraphrase of each record is picked
from the seed and the record id: stable across runs, varied across records.
"""

from __future__ import annotations

import hashlib
from typing import Any

from backends.models import CHAT_TEMPLATE_KWARGS
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
    return {"prompt": messages[:-1], "completion": messages[-1:], "chat_template_kwargs": CHAT_TEMPLATE_KWARGS}


def to_examples(records: list[Record], task: Task, seed: int = 0) -> list[dict[str, Any]]:
    return [to_example(r, task, seed) for r in records]


def render(tokenizer: Any, example: dict[str, Any]) -> str:
    """The full training string through `tokenizer.apply_chat_template` (no tokenisation)."""
    return tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False,
                                         **CHAT_TEMPLATE_KWARGS)


def loss_split(tokenizer: Any, example: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) the way TRL splits them: the completion starts where the prompt
    rendered with a generation header stops being a prefix of the whole conversation."""
    prompt = tokenizer.apply_chat_template(example["prompt"], tokenize=True, add_generation_prompt=True,
                                           return_dict=True, **CHAT_TEMPLATE_KWARGS)["input_ids"]
    full = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True,
                                         return_dict=True, **CHAT_TEMPLATE_KWARGS)["input_ids"]
    cut = 0
    while cut < min(len(prompt), len(full)) and prompt[cut] == full[cut]:
        cut += 1
    return full[:cut], full[cut:]


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
        prompt_ids, completion_ids = loss_split(tokenizer, example)
        lines.append(f"--- chat template ({len(prompt_ids) + len(completion_ids)} tokens; "
                     f"loss on the last {len(completion_ids)})")
        lines.append(render(tokenizer, example))
        lines.append("--- loss on: " + repr(tokenizer.decode(completion_ids, skip_special_tokens=False)))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
