"""A strict parser from a model's free text to a task label: it neither rescues nor punishes formatting.

    parse_label("Positive.", task)                      # ParsedLabel("positive", "case_folded")
    parse_label('{"label": "bearish"}', task)           # ParsedLabel("negative", "json")
    parse_label("I think it is tích cực overall", task) # ParsedLabel("positive", "first_mention")
    parse_label("maybe up?", task)                      # ParsedLabel(None, "invalid") -> counted as wrong

Rules, tried in order (the first that applies decides): json, exact, case_folded, synonym,
first_mention, otherwise invalid. The rules in full: docs/evaluation.md#design-evaluatorparserpy
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from core.task_spec import Task, fold_label

INVALID = "invalid"
RULES = ("json", "exact", "case_folded", "synonym", "first_mention", INVALID)

# What may wrap a one-word answer without changing it: spaces, quotes, backticks, final punctuation.
_WRAPPING = " \t\r\n\"'`“”‘’*"
_TRAILING = ".!;:,"
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class ParsedLabel:
    """`label` is a task label, or None when `rule` is ``invalid``."""

    label: str | None
    rule: str

    @property
    def valid(self) -> bool:
        return self.label is not None


def parse_label(text: str | None, task: Task) -> ParsedLabel:
    """Map one raw model output to a task label by the rules in the module docstring."""
    if text is None or not text.strip():
        return ParsedLabel(None, INVALID)
    obj = _json_value(text)
    if isinstance(obj, dict):
        value = obj.get(task.label_name)
        label = task.normalise_label(value) if isinstance(value, str) else None
        return ParsedLabel(label, "json" if label else INVALID)
    if isinstance(obj, str):
        text = obj
    bare = _strip(text)
    if bare in task.labels:
        return ParsedLabel(bare, "exact")
    label = task.normalise_label(bare)
    if label is not None:
        rule = "case_folded" if fold_label(bare) == fold_label(label) else "synonym"
        return ParsedLabel(label, rule)
    label = first_mention(text, task)
    return ParsedLabel(label, "first_mention") if label else ParsedLabel(None, INVALID)


def first_mention(text: str, task: Task) -> str | None:
    """The label whose name or synonym occurs earliest in `text` as whole words, or None."""
    spellings = tuple(s for spec in task.labels.values() for s in (spec.name, *spec.synonyms))
    match = _mention_pattern(spellings).search(fold_label(text))
    return task.normalise_label(match.group(1)) if match else None


@lru_cache(maxsize=32)
def _mention_pattern(spellings: tuple[str, ...]) -> re.Pattern[str]:
    folded = {fold_label(s) for s in spellings}
    # Longest first: the regex alternation takes the first alternative that matches at a position.
    alternatives = "|".join(re.escape(s) for s in sorted(folded, key=len, reverse=True) if s)
    return re.compile(rf"(?<!\w)({alternatives})(?!\w)")


def _strip(text: str) -> str:
    text = text.strip(_WRAPPING)
    return text.rstrip(_TRAILING).strip(_WRAPPING)


def _json_value(text: str) -> object:
    """The JSON value the text holds: the whole text, a fenced block, or the first {...} in it."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, dict | str):
            return value
    return None
