"""A few-step LoRA adapter on the evaluator's own prompts, for tests, benchmarks and smoke runs.

    path = quick_adapter(task, records, out_dir, model="tiny", steps=40)

Real adapters come from `python -m trainer` (TRL's SFTTrainer). This is a deliberately small
loop over the same training format (`task.training_messages`, loss on the answer only), so the
evaluator can be exercised end to end on the tiny model without depending on a training run.
"""

from __future__ import annotations

import random
from pathlib import Path

from core.models import load_model
from core.records import Record
from core.tasks import Task


def quick_adapter(
    task: Task, records: list[Record], out_dir: str | Path, *, model: str = "tiny", steps: int = 40,
    batch_size: int = 8, lr: float = 3e-3, rank: int = 8, seed: int = 0, device: str = "cpu",
) -> Path:
    """Train a LoRA adapter for `steps` steps on `records` and save it (standard PEFT folder)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    base, tokenizer = load_model(model, device=device)
    peft_model = get_peft_model(base, LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    examples = [_encode(tokenizer, task, r) for r in records]
    optimiser = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    peft_model.train()
    for _ in range(steps):
        batch = rng.sample(examples, min(batch_size, len(examples)))
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=device)
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=device)
        loss = peft_model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    out = Path(out_dir)
    peft_model.save_pretrained(out)
    return out


def _encode(tokenizer, task: Task, record: Record) -> tuple[list[int], list[int]]:
    """(input ids, labels) with the loss on the assistant answer and its end-of-turn token only."""
    messages = task.training_messages(record.text, record.lang, record.labels, variant=0)
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    return full_ids, [-100] * len(prompt_ids) + full_ids[len(prompt_ids):]
