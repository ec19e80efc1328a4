"""Paraphrase augmentation of the training tickets through an OpenAI-compatible API (run.py, when configured).

    rows, info = augment(train_rows, seed=0, max_cost_usd=3.0, time_budget_s=150)   # rows + paraphrases

On only when `OPENAI_API_KEY` and `OPENAI_BASE_URL` are both set; `OPENAI_MODEL` picks the model
(default gpt-4o-mini; it must have a price in backends/pricing.py, or the cap could not be kept).
A paraphrase of row `x` is row `x~p`, with x's intent and reply: one group with x (`oneshot.groups`),
so it is never x's neighbour, evidence about x, or on the other side of a fold from x.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import defaultdict
from typing import Annotated, Any

from pydantic import ConfigDict, StringConstraints, create_model

from backends import Completion, Sampling, get_backend
from core.records import Record
from core.tasks import load_task
from oneshot.adapter import TASK
from oneshot.contract import TrainRow, paraphrase_id
from validators.chain import run_chain

DEFAULT_MODEL = "gpt-4o-mini"
MAX_NEW_TOKENS = 300  # a ticket is at most 800 characters: about 200 tokens, in JSON
# Product-neutral on purpose: the product is known only through its tickets (a name here would leak
# into every paraphrase of another product's tickets).
PROMPT = ("Rewrite this customer support ticket in different words, as a {tone} customer would write it. Keep its "
          "meaning, every fact and detail it gives, and its intent ({intent}); do not answer it.\n"
          "Ticket: {ticket}\n"
          'Answer as JSON: {{"ticket": "..."}}.')


def paraphrase_order(rows: list[TrainRow], seed: int) -> list[TrainRow]:
    """Rows dealt round-robin over the intents, each intent's rows in a seeded order: when the budget
    runs out first, the paraphrased rows are still spread over every intent."""
    rng = random.Random(seed)
    by_intent: dict[str, list[TrainRow]] = defaultdict(list)
    for row in rows:
        by_intent[row.intent].append(row)
    queues = []
    for intent in sorted(by_intent):
        members = list(by_intent[intent])
        rng.shuffle(members)
        queues.append(members)
    order: list[TrainRow] = []
    while any(queues):
        order += [q.pop(0) for q in queues if q]
    return order


def row_seed(seed: int, row_id: str) -> int:
    """A row's request seed depends on the run's seed and the row alone (not on which rows came first)."""
    return int(hashlib.sha256(f"{seed}\x1f{row_id}".encode()).hexdigest()[:8], 16)


def augment(rows: list[TrainRow], *, seed: int, max_cost_usd: float, time_budget_s: float | None = None
            ) -> tuple[list[TrainRow], dict[str, Any]]:
    """Paraphrase the training tickets through an OpenAI-compatible API, when one is configured.

    Requests go in small batches, each planned so that its most possible cost fits under what is left
    of `max_cost_usd` (so the cap never cuts a batch at random); sending stops at the cap, at the time
    budget, or at the first batch with an API error (an HTTP 402 above all), and what was answered
    before is kept. Each request is sent once per run and its answer used for the whole run.
    Paraphrases keep their source row's intent and reply and pass the task's validators (schema,
    quality, near-duplicates against the real rows, language). Never raises: no API, no augmentation.
    """
    if not (os.environ.get("OPENAI_API_KEY") and os.environ.get("OPENAI_BASE_URL")):
        return rows, {"used": False, "reason": "OPENAI_API_KEY and OPENAI_BASE_URL not both set"}
    started = time.monotonic()
    model = os.environ.get("OPENAI_MODEL", DEFAULT_MODEL)
    task = load_task(TASK).with_labels(list(dict.fromkeys(r.intent for r in rows)))
    schema = create_model("Paraphrase", __config__=ConfigDict(extra="forbid"), **{task.input_name: (
        Annotated[str, StringConstraints(min_length=task.input_min_chars, max_length=task.input_max_chars)], ...)})
    tones = task.attributes.get("tone", {}).get("*", ["polite"])
    rng = random.Random(seed)
    budget = time_budget_s if time_budget_s is not None else float("inf")
    try:
        backend = get_backend("openai", model=model, max_cost_usd=max_cost_usd,
                              timeout_s=max(10.0, min(60.0, budget / 3)), max_retries=1)
    except Exception as exc:  # no price for the model, no SDK, ...: no augmentation, never a failed run
        return rows, {"used": False, "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
    order = paraphrase_order(rows, seed)
    prompts = {r.id: PROMPT.format(tone=rng.choice(tones), intent=r.intent, ticket=r.ticket) for r in order}
    answers: dict[str, Completion] = {}  # row id -> its one answer, used for the whole run
    stopped, queue = None, list(order)
    batch_size = 2 * backend.concurrency
    while queue:
        if time.monotonic() - started > budget:
            stopped = "time budget"
            break
        batch, planned = [], 0.0
        left = max_cost_usd - backend.total_spent_usd
        for row in queue[:batch_size]:
            most = backend.most_cost_usd(prompts[row.id], MAX_NEW_TOKENS)
            if planned + most > left:
                break
            batch.append(row)
            planned += most
        if not batch:
            stopped = "spend cap"
            break
        queue = queue[len(batch):]
        completions = backend.generate([prompts[r.id] for r in batch], schema,
                                       Sampling(temperature=0.9, seed=seed, max_new_tokens=MAX_NEW_TOKENS),
                                       seeds=[row_seed(seed, r.id) for r in batch])
        answers.update((r.id, c) for r, c in zip(batch, completions, strict=True))
        api_errors = sorted({c.error for c in completions if c.error and c.error.startswith("API error")})
        if api_errors:
            stopped = api_errors[0][:200]
            break
    answered = [(r, answers[r.id]) for r in rows if r.id in answers]
    real = [Record.new(task=task.name, lang="en", text=r.ticket, source="real", split="train",
                       labels={"intent": r.intent, "reply": r.reply}) for r in rows]
    paraphrases = [
        Record.new(task=task.name, lang="en", text=" ".join(c.parsed[task.input_name].split()), source="synthetic",
                   split="train", labels={"intent": r.intent, "reply": r.reply},
                   provenance={"paraphrase_of": r.id, "model": model})
        for r, c in answered if c.ok and c.parsed
    ]
    # A paraphrase is meant to say its source ticket again: paraphrase_duplicates, which rejects exactly that
    # in generated data, is skipped here (a paraphrase joins its source's group, so it is never evidence).
    accepted, _, _ = run_chain(task, paraphrases, references=real, seed=seed, progress=False,
                               skip=("self_consistency", "paraphrase_duplicates")) if paraphrases else ([], [], {})
    by_id = {r.id: r for r in rows}
    taken, tickets = set(by_id), {r.ticket.casefold() for r in rows}
    extra: list[TrainRow] = []
    for rec in accepted:  # validators keep the input order: the source rows' order
        if rec.text.casefold() in tickets:
            continue
        source = by_id[rec.provenance["paraphrase_of"]]
        row = TrainRow(paraphrase_id(source.id, taken), rec.text, source.intent, source.reply)
        taken.add(row.id)
        tickets.add(rec.text.casefold())
        extra.append(row)
    info = {"used": bool(extra), "model": model, "rows": len(rows), "requested": len(answered),
            "answered": sum(c.ok for _, c in answered), "parsed": len(paraphrases), "accepted": len(extra),
            "cost_usd": round(backend.cost_usd, 8), "max_cost_usd": max_cost_usd, "stopped": stopped,
            "errors": sorted({c.error for _, c in answered if c.error})[:3],
            "wall_clock_s": round(time.monotonic() - started, 2)}
    backend.close()
    return rows + extra, info

