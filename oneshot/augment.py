"""Paraphrase augmentation of the training tickets through an OpenAI-compatible API (run.py, when configured).

    rows, info = augment(train_rows, seed=0, max_cost_usd=3.0)   # rows + accepted paraphrases, and what it did

On only when `OPENAI_API_KEY` and `OPENAI_BASE_URL` are both set; `OPENAI_MODEL` picks the model
(default gpt-4o-mini).
"""

from __future__ import annotations

import os
import random
from typing import Any

from backends import Sampling, get_backend
from core.records import Record
from core.tasks import load_task
from oneshot.adapter import TASK
from oneshot.contract import TrainRow
from validators.chain import run_chain


def augment(rows: list[TrainRow], *, seed: int, max_cost_usd: float) -> tuple[list[TrainRow], dict[str, Any]]:
    """Paraphrase the training tickets through an OpenAI-compatible API, when one is configured.

    Paraphrases keep their source row's intent and reply, pass the task's validators (schema, quality,
    near-duplicates against the real rows) and cost at most `max_cost_usd`. Any API error (an HTTP 402
    included) means no augmentation, never a failed run.
    """
    if not (os.environ.get("OPENAI_API_KEY") and os.environ.get("OPENAI_BASE_URL")):
        return rows, {"used": False, "reason": "OPENAI_API_KEY and OPENAI_BASE_URL not both set"}
    task = load_task(TASK).with_labels(list(dict.fromkeys(r.intent for r in rows)))
    rng = random.Random(seed)
    model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    by_ticket = {r.ticket: r for r in rows}
    try:
        backend = get_backend("openai", model=model, max_cost_usd=max_cost_usd)
        tones = task.attributes.get("tone", {}).get("*", ["polite"])
        prompts = [task.render_generation("paraphrase", lang="en", label=r.intent,
                                          seeds=[{"text": r.ticket, "label": r.intent}],
                                          attributes={"tone": rng.choice(tones), "plan": ""}) for r in rows]
        completions = backend.generate(prompts, task.generation_schema(),
                                       Sampling(temperature=0.9, seed=seed, max_new_tokens=400))
    except Exception as exc:  # the contract: degrade to no augmentation, never crash
        return rows, {"used": False, "reason": f"API error: {type(exc).__name__}: {str(exc)[:200]}"}
    real = [Record.new(task=task.name, lang="en", text=r.ticket, source="real", split="train",
                       labels={"intent": r.intent, "reply": r.reply}) for r in rows]
    paraphrases = [
        Record.new(task=task.name, lang="en", text=c.parsed[task.input_name], source="synthetic", split="train",
                   labels={"intent": r.intent, "reply": r.reply}, provenance={"paraphrase_of": r.id, "model": model})
        for r, c in zip(rows, completions, strict=True) if c.ok and c.parsed
    ]
    accepted, _, _ = run_chain(task, paraphrases, references=real, seed=seed, progress=False,
                               skip=("self_consistency",))
    extra = [TrainRow(f"{rec.provenance['paraphrase_of']}~p", rec.text, rec.labels["intent"], rec.labels["reply"])
             for rec in accepted if rec.text not in by_ticket]
    info = {"used": bool(extra), "model": model, "requested": len(prompts), "parsed": len(paraphrases),
            "accepted": len(extra), "cost_usd": round(getattr(backend, "cost_usd", 0.0), 4),
            "errors": sorted({c.error for c in completions if c.error})[:3]}
    return rows + extra, info
