"""The prompts both models see, and the strings choice scoring compares.

    prompts = tuned_prompts(task, records)                        # the training format (variant 0)
    prompts = base_prompts(task, records, shots=3, pool=train)    # same instruction + k examples as turns
    frame = score_choices(task)             # what `Backend.score` is asked about: frame.choices after frame.before

Fairness: both models get the same system prompt and instruction (`task.classify_messages`, the
first paraphrase). The base model never saw the trained answer format, so it may optionally get k
worked examples from the train split as earlier user/assistant turns; they are drawn with a seeded
RNG, balanced over labels, per language, and any example whose text is also an eval item is refused.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass

from core.errors import fail
from core.records import Record, normalise_text
from core.task_spec import Task

Messages = list[dict[str, str]]


def tuned_prompts(task: Task, records: list[Record]) -> list[Messages]:
    """Exactly the system + user turns the adapter was trained on (instruction paraphrase 0)."""
    return [task.classify_messages(r.text, r.lang, variant=0, source=r.provenance.get("dataset")) for r in records]


def pick_shots(
    task: Task, pool: list[Record], k: int, lang: str, *, seed: int = 0, exclude: set[str] = frozenset(),
) -> list[Record]:
    """k labelled examples of `lang` (any language when `lang` has none), round-robin over labels.

    `exclude` holds normalised texts that must never be shown (the eval items).
    """
    usable = [r for r in pool if task.label_name in r.labels and r.labels[task.label_name] in task.labels
              and normalise_text(r.text) not in exclude]
    same_lang = [r for r in usable if r.lang == lang]
    candidates = same_lang or usable
    if len(candidates) < k:
        fail(f"--shots {k}: only {len(candidates)} usable labelled examples in the shot pool for '{lang}'")
    rng = random.Random(f"{seed}:{lang}")
    by_label: dict[str, list[Record]] = defaultdict(list)
    for record in sorted(candidates, key=lambda r: r.id):
        by_label[record.labels[task.label_name]].append(record)
    for records in by_label.values():
        rng.shuffle(records)
    order = sorted(by_label)
    rng.shuffle(order)
    chosen: list[Record] = []
    while len(chosen) < k:
        for label in order:
            if by_label[label] and len(chosen) < k:
                chosen.append(by_label[label].pop())
    rng.shuffle(chosen)  # so the last example's label is not always the same one
    return chosen


def base_prompts(
    task: Task, records: list[Record], *, shots: int = 0, pool: list[Record] | None = None, seed: int = 0,
) -> list[Messages]:
    """The same instruction as `tuned_prompts`; with `shots`, k examples as earlier turns.

    The examples are fixed per language (one draw per language, not per item), so every item of a
    language sees the same context and differences come from the items alone.
    """
    if shots <= 0:
        return tuned_prompts(task, records)
    if not pool:
        fail("--shots needs --shots-from: a train-split JSONL to draw the examples from (never the eval file)")
    exclude = {normalise_text(r.text) for r in records}
    per_lang = {lang: pick_shots(task, pool, shots, lang, seed=seed, exclude=exclude)
                for lang in sorted({r.lang for r in records})}
    prompts = []
    for record in records:
        source = record.provenance.get("dataset")
        turns: Messages = []
        for shot in per_lang[record.lang]:
            # The question's own prompts (its source's), so one conversation has one system prompt.
            messages = task.training_messages(shot.text, shot.lang, shot.labels, variant=0, source=source)
            # System prompt once, at the top; each example is a user question and its answer.
            turns.extend(messages[1:] if turns else messages)
        question = task.classify_messages(record.text, record.lang, variant=0, source=source)
        prompts.append([*turns, question[1]] if turns else question)
    return prompts


@dataclass(frozen=True)
class ScoreChoices:
    """What choice scoring compares: each of `choices` after `before`, followed by `after` (the keywords
    of `Backend.score`)."""

    choices: list[str]
    before: str = ""
    after: str = ""

    def frame(self) -> dict[str, str]:
        """`before`/`after` as `Backend.score` keywords (none for a bare label: any backend takes that)."""
        return {k: v for k, v in (("before", self.before), ("after", self.after)) if v}


_LABEL = "LABEL7q"  # stands for the label inside the answer format


def score_choices(task: Task) -> ScoreChoices:
    """The strings whose log-probability choice scoring compares, one per label, in label order.

    Label-only tasks: the bare label (exactly the trained answer). Tasks that answer in JSON: the label
    value and its closing quote, after the answer's start (``{"intent": "``) and before the rest of it
    (``, "reply": ""}``), so the tuned model is scored on the tokens of its own format: the closing
    quote's token is the one training has there (``",`` in byte-level BPE), not a lone ``"``.
    """
    if not task.outputs:
        return ScoreChoices(list(task.label_names))
    answer = task.answer({task.label_name: _LABEL})
    at = answer.index(_LABEL)
    before, rest = answer[:at], answer[at + len(_LABEL):]  # rest: '", "reply": ""}'
    return ScoreChoices([json.dumps(label, ensure_ascii=False)[1:-1] + rest[0] for label in task.label_names],
                        before=before, after=rest[1:])
