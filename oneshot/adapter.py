"""The fine-tuned model's part: LoRA training on retrieval-augmented prompts, intent scores, replies.

    summary = train_adapter(rows, neighbours, intents, base_model="tiny", out=Path("w"), seed=0, budget_s=300)
    backend = load_backend("tiny", Path("w"))
    logprobs, tokens = score_intents(backend, prompts, intents)       # (rows, intents) log P(intent | prompt)
    replies = generate_replies(backend, prompts, chosen_intents, max_new_tokens=160)

Training goes through the project's trainer (TRL `SFTTrainer` + PEFT) with the prompts of
`oneshot.prompts`, so the adapter learns to read the neighbours it will be shown at prediction.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np

from backends import Sampling, chat
from backends.models import is_tiny
from backends.transformers_backend import TransformersBackend
from core.records import Record
from core.tasks import load_task
from oneshot.contract import TrainRow
from oneshot.prompts import Messages, intent_choices, parse_reply, reply_prefix, training_example
from trainer.config import TrainConfig

TASK = "support_intent"

def default_neighbours(base_model: str) -> int:
    """Solved neighbours per prompt: 4 for a real model; 1 keeps the tiny models' CPU runs short."""
    return 1 if is_tiny(base_model) else 4


def reply_tokens(base_model: str) -> int:
    """Token budget of a generated reply: 600 characters of English is about 150 tokens."""
    return 48 if is_tiny(base_model) else 180


def train_adapter(rows: list[TrainRow], neighbours: dict[str, list[TrainRow]], intents: list[str], *,
                  base_model: str, out: Path, seed: int, budget_s: float, overrides: dict[str, Any],
                  held_out: list[TrainRow] | None = None) -> dict[str, Any]:
    """LoRA SFT on `rows`, each prompted with `neighbours[row.id]`; `held_out` gives the eval loss."""
    from trainer.sft import train

    task = load_task(TASK).with_labels(intents)
    by_id = {r.id: r for r in [*rows, *(held_out or [])]}

    def record(row: TrainRow) -> Record:
        return Record.new(task=task.name, lang="en", text=row.ticket, source="real", split="train",
                          labels={"intent": row.intent, "reply": row.reply}, provenance={"row_id": row.id})

    def format_example(rec: Record) -> list[dict[str, Any]]:
        # Longest first: a prompt whose answer would not fit max_length drops its least similar neighbours
        # (the first ones) until it fits; trainer/lengths.py picks the first candidate that fits.
        row = by_id[rec.provenance["row_id"]]
        ns = neighbours[row.id]
        return [{**training_example(row, ns[k:], intents),
                 **({"shortened": f"{k} of {len(ns)} neighbours dropped"} if k else {})} for k in range(len(ns) + 1)]

    # Epochs, max length and batch come from trainer.config.TASK_DEFAULTS["support_intent"] (one source).
    cfg = TrainConfig(task=task.name, model=base_model, out=str(out), seed=seed, time_budget_s=max(budget_s, 5.0),
                      val_fraction=0.0, task_defaults=True, **overrides)
    summary = train(cfg, [record(r) for r in rows], task=task, format_example=format_example,
                    val_records=[record(r) for r in held_out or []])
    keys = ("steps", "train_loss", "val_loss", "wall_clock_s", "tokens_per_s", "peak_memory_mb", "trainable_params",
            "total_params", "stopped_early", "time_budget_s", "method", "model")
    return {k: summary.get(k) for k in keys}


def load_backend(base_model: str, adapter: Path | None, batch_size: int = 8) -> Any:
    return TransformersBackend(base_model, adapter=adapter, batch_size=batch_size)


def score_intents(backend: Any, prompts: list[Messages], intents: list[str]) -> tuple[np.ndarray, list[int]]:
    """log P(intent | prompt) normalised over the taxonomy, and the prompt tokens each row cost.

    Each choice is the intent and its closing quote inside the answer's start, scored on the tokens the
    training text has there (`oneshot.prompts.intent_choices`), so every intent is scored as a whole
    string in the trained format.
    """
    if not prompts:
        return np.zeros((0, len(intents))), []
    before, choices, after = intent_choices(intents)
    raw = np.asarray(backend.score(prompts, choices, before=before, after=after), dtype=np.float64)
    normalised = raw - np.logaddexp.reduce(raw, axis=1, keepdims=True)
    tokens = [len(backend.tokenizer(backend.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    return normalised, tokens


def generate_replies(backend: Any, prompts: list[Messages], intents: list[str], *, max_new_tokens: int,
                     seed: int) -> list[tuple[str, int]]:
    """Greedy reply after the decided intent, in the trained JSON format: (reply, tokens used) per row.

    Each prompt is the training text up to the reply (`chat.answer_prefix` + `reply_prefix`), tokenised
    whole, so the model continues from the very tokens it was trained on.
    """
    texts = [chat.answer_prefix(backend.tokenizer, p) + reply_prefix(intent)
             for p, intent in zip(prompts, intents, strict=True)]
    completions = backend.generate(texts, None, Sampling(temperature=0.0, max_new_tokens=max_new_tokens, seed=seed))
    return [(parse_reply(c.text), c.prompt_tokens + c.completion_tokens) for c in completions]


def free_memory() -> None:
    """Give back GPU memory between the trainings and loads of one run."""

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
