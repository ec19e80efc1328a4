"""A task's rubric for the LLM judge: scores with their options, the keep rule, the judge's answer schema.

    rubric = load_task("fin_sentiment").rubric          # parsed from the task YAML's `rubric:` (core.tasks)
    rubric.schema()                                     # {"reasoning": str, <score>: one of its options, ...}
    rubric.keeps({"plausible": 3, "label_right": 1})    # False: label_right is under its threshold
    rubric.text(reverse=True)                           # the scores and options as the prompt lists them

The judge (validators/judge.py) asks a model for a short reasoning first, then every score as an enum
of that score's option values, so a constrained decoder always produces a parseable verdict.
Options are whole numbers on an ordered scale (higher is better); a sample is kept when every score
(`keep: all`) or at least one (`keep: any`) is at or above its threshold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, StringConstraints, create_model

REASONING = "reasoning"  # the answer's first field: the judge explains before it scores
KEEP_RULES = ("all", "any")
SCORE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # a JSON key and a Python identifier
# The judge's system turn when the rubric names none.
JUDGE_SYSTEM = ("You review training examples for a text classifier against a rubric. Judge the example as a "
                "careful domain expert would, and answer with JSON only.")


@dataclass(frozen=True)
class RubricScore:
    """One criterion: its options as (value, meaning) in the order the YAML lists them."""

    name: str
    description: str
    options: tuple[tuple[int, str], ...]
    threshold: int

    @property
    def values(self) -> list[int]:
        return sorted(v for v, _ in self.options)

    def meaning(self, value: int) -> str:
        return dict(self.options).get(value, "")

    def ordered(self, reverse: bool = False) -> list[tuple[int, str]]:
        """The options as the prompt lists them: as written, or in the opposite order (the order check)."""
        return list(reversed(self.options)) if reverse else list(self.options)


@dataclass(frozen=True)
class Rubric:
    """The judge's rubric. Build it with `core.tasks.load_task`; `prompt` and `system` are Jinja
    templates over the record (see `Task.judge_messages` for their variables)."""

    scores: tuple[RubricScore, ...]
    prompt: jinja2.Template = field(repr=False)
    system: jinja2.Template = field(repr=False)
    keep: str = "all"
    reasoning_chars: int = 200

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scores]

    def score(self, name: str) -> RubricScore:
        return next(s for s in self.scores if s.name == name)

    def thresholds(self, overrides: dict[str, int] | None = None) -> dict[str, int]:
        """Each score's threshold: the YAML's, or the override (e.g. calibrated against people)."""
        return {s.name: int((overrides or {}).get(s.name, s.threshold)) for s in self.scores}

    def keeps(self, scores: dict[str, int], thresholds: dict[str, int] | None = None) -> bool:
        """The keep rule: every score (`all`) or one (`any`) at or above its threshold."""
        limits = self.thresholds(thresholds)
        above = [int(scores[name]) >= limits[name] for name in self.names]
        return all(above) if self.keep == "all" else any(above)

    def normalised(self, scores: dict[str, int]) -> float:
        """The scores as one number in 0..1: the mean of each score's place between its lowest and
        highest option (1 = every score at its best)."""
        parts = []
        for s in self.scores:
            low, high = s.values[0], s.values[-1]
            parts.append((int(scores[s.name]) - low) / (high - low))
        return sum(parts) / len(parts)

    def schema(self, reverse: bool = False) -> type[BaseModel]:
        """The judge's answer: a bounded reasoning first, then each score as an enum of its option values
        (in the prompt's order: reversed for the order check)."""
        reasoning = Annotated[str, StringConstraints(min_length=1, max_length=self.reasoning_chars)]
        fields: dict[str, Any] = {REASONING: (reasoning, ...)}
        for s in self.scores:
            fields[s.name] = (Literal[tuple(v for v, _ in s.ordered(reverse))], ...)
        return create_model("JudgeAnswer", __config__=ConfigDict(extra="forbid"), **fields)

    def text(self, reverse: bool = False) -> str:
        """The scores and their options as a list for the prompt (`{{ rubric }}`)."""
        lines = []
        for s in self.scores:
            lines.append(f"- {s.name}: {s.description}".rstrip())
            lines.extend(f"    {value} = {meaning}" for value, meaning in s.ordered(reverse))
        return "\n".join(lines)

    def answer_format(self, reverse: bool = False) -> str:
        """`{"reasoning": "...", "plausible": 1|2|3, ...}`: the shape the prompt asks for (`{{ answer_format }}`)."""
        parts = [f'"{REASONING}": "..."']
        parts += [f'"{s.name}": ' + "|".join(str(v) for v, _ in s.ordered(reverse)) for s in self.scores]
        return "{" + ", ".join(parts) + "}"

    def max_new_tokens(self) -> int:
        """A decoding budget that lets the answer close: a token per reasoning character (a token is at
        least one character), plus keys, values and punctuation."""
        return self.reasoning_chars + 16 * (1 + len(self.scores)) + 32

    def parse_lenient(self, text: str) -> dict[str, Any] | None:
        """An answer a server returned outside the schema (fences, an over-long reasoning, "3" for 3):
        its scores when every one is an option, else None."""
        body = text.strip()
        if body.startswith("```"):
            body = body.split("\n", 1)[1] if "\n" in body else ""
            body = body.rsplit("```", 1)[0]
        try:
            obj = json.loads(body)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        out: dict[str, Any] = {REASONING: str(obj.get(REASONING, ""))[: self.reasoning_chars]}
        for s in self.scores:
            raw = obj.get(s.name)
            try:
                number = float(str(raw).strip())
            except ValueError:
                return None
            if not number.is_integer() or int(number) not in s.values:
                return None
            out[s.name] = int(number)
        return out
