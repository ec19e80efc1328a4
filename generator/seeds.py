"""Seed examples for seed-conditioned prompts: the data stage's train split, as `Record` JSONL.

    seeds = load_seeds("runs/fin/data/train.jsonl", task, lang="en")
    by_label = seeds_by_label(seeds, task)

Every seed must carry a label of the task; a seed with an unknown label is a user error naming the
file and line (a silent skip would quietly unbalance the prompts).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from core.errors import UserError, fail
from core.io import describe_validation_error, iter_jsonl
from core.records import Record
from core.task_spec import Task


def load_seeds(path: str | Path, task: Task, lang: str) -> list[Record]:
    """The seeds of `task` in `lang` from `path`; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        fail(f"{path}: seed file not found (pass --seeds, e.g. the data stage's train.jsonl)")
    if lang not in task.languages:
        fail(f"task '{task.name}' has no language '{lang}' (languages: {', '.join(task.languages)})")
    seeds: list[Record] = []
    langs_seen: set[str] = set()
    total = 0
    for lineno, obj in iter_jsonl(path):
        total += 1
        try:
            record = Record.model_validate(obj)
        except ValidationError as exc:
            raise UserError(f"{path}:{lineno}: {describe_validation_error(exc)}") from None
        if record.task != task.name:
            continue
        label = record.labels.get(task.label_name)
        if label is None:
            fail(f"{path}:{lineno}: field 'labels.{task.label_name}': missing (a seed needs its label)")
        if label not in task.labels:
            fail(f"{path}:{lineno}: field 'labels.{task.label_name}': '{label}' is not a label of task "
                 f"'{task.name}' ({', '.join(task.label_names)})")
        langs_seen.add(record.lang)
        if record.lang == lang:
            seeds.append(record)
    if total == 0:
        fail(f"{path}: empty seed file (no records)")
    if not seeds:
        found = ", ".join(sorted(langs_seen)) or "none"
        fail(f"{path}: no seeds for task '{task.name}' in language '{lang}' (languages found: {found})")
    return seeds


def seeds_by_label(seeds: list[Record], task: Task) -> dict[str, list[Record]]:
    """Seeds grouped by label, in file order (every task label present, possibly empty)."""
    groups: dict[str, list[Record]] = {label: [] for label in task.label_names}
    for seed in seeds:
        groups[seed.labels[task.label_name]].append(seed)
    return groups


def file_digest(path: str | Path) -> str:
    """Content hash of the seed file: part of a run's identity, so edited seeds are a new run."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
