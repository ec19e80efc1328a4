"""`judge`: an LLM scores each sample against the task's rubric (`rubric:` in its YAML) and the keep rule decides.

    validators:                       # in a task YAML (or --enable judge, --set judge.mode=flag)
      - name: judge
        mode: filter                  # filter: rejects what the keep rule fails; flag: records, never rejects
        thresholds: {label_right: 3}  # over the rubric's (what generate.py --judge-calibrated-from sets)

The answer is constrained JSON on every backend (Outlines on transformers, guided decoding on vLLM, the
JSON-schema response format on an OpenAI-compatible server): a short reasoning, then each score as one
of its options. An answer that still does not parse (a server that ignores the schema, an API error)
keeps the sample with the reason (rule `unparsed`): the batch never stops. The judge runs on its own
model (`Context.judge_backend`, `--judge-model`) or the chain's. `usage` has its tokens and dollars.
Details: docs/validation.md#the-llm-judge
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from backends import Completion, Sampling
from core.errors import fail
from core.records import Record, Verdict
from core.rubric import REASONING, Rubric
from validators.base import BaseValidator
from validators.self_consistency import record_seed

MODES = ("filter", "flag")
UNPARSED_DOUBT = 0.5  # an unjudged sample: a person should look, but not first
FLAGGED_DOUBT = 0.9  # `mode: flag` and the judge would reject it


class JudgeValidator(BaseValidator):
    name = "judge"
    defaults: ClassVar[dict[str, Any]] = {"mode": "filter", "thresholds": {}, "temperature": 0.0,
                                          "reverse_options": False, "max_new_tokens": None}
    expensive = True
    needs_backend = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        where = f"{self.task.path}: validators[judge]"
        if self.task.rubric is None:
            fail(f"{where}: the task has no `rubric:` (scores, options, thresholds and the judge's prompt; "
                 "see tasks/fin_sentiment.yaml)")
        if self.options["mode"] not in MODES:
            fail(f"{where}.mode: '{self.options['mode']}' is not one of: {', '.join(MODES)}")
        thresholds = self.options["thresholds"] or {}
        if not isinstance(thresholds, dict):
            fail(f"{where}.thresholds: expected a mapping score -> value, e.g. {{label_right: 3}}")
        for name, value in thresholds.items():
            if name not in self.rubric.names:
                fail(f"{where}.thresholds.{name}: not a score of the rubric ({', '.join(self.rubric.names)})")
            if value not in self.rubric.score(name).values:
                fail(f"{where}.thresholds.{name}: {value!r} is not one of its options "
                     f"({', '.join(map(str, self.rubric.score(name).values))})")
        self.thresholds = self.rubric.thresholds(thresholds)
        self.usage: dict[str, Any] = {"model": None, "backend": None, "mode": self.options["mode"],
                                      "thresholds": dict(self.thresholds), "records": 0, "parsed": 0,
                                      "unparsed": 0, "tokens": {"prompt": 0, "completion": 0}, "cost_usd": None}

    @property
    def rubric(self) -> Rubric:
        assert self.task.rubric is not None  # checked in __init__
        return self.task.rubric

    @property
    def model(self) -> Any:
        return self.context.judge_backend or self.context.backend

    @cached_property
    def reverse(self) -> bool:
        return bool(self.options["reverse_options"])

    def answers(self, records: list[Record]) -> list[Completion]:
        """The judge's raw answers, one per record (the order check compares two runs of these)."""
        if not records:
            return []
        prompts = [self.task.judge_messages(r.text, r.lang, r.labels, reverse=self.reverse) for r in records]
        budget = self.options["max_new_tokens"] or self.rubric.max_new_tokens()
        sampling = Sampling(temperature=float(self.options["temperature"]), max_new_tokens=int(budget),
                            seed=self.context.seed, strategy="judge")
        seeds = [record_seed(self.context.seed, r.id, 0) for r in records]
        backend = self.model
        spent_before = getattr(backend, "cost_usd", None)
        completions = backend.generate(prompts, self.rubric.schema(self.reverse), sampling, seeds=seeds)
        used = self.usage
        used["model"], used["backend"] = getattr(backend, "model_id", None), getattr(backend, "name", None)
        used["records"] += len(records)
        used["tokens"]["prompt"] += sum(c.prompt_tokens for c in completions)
        used["tokens"]["completion"] += sum(c.completion_tokens for c in completions)
        if spent_before is not None:  # an API backend keeps the bill (retries included)
            used["cost_usd"] = round((used["cost_usd"] or 0.0) + float(backend.cost_usd) - float(spent_before), 6)
        return completions

    def parse(self, completion: Completion) -> dict[str, Any] | None:
        """The answer's reasoning and scores, or None when it cannot be read as a verdict."""
        parsed = completion.parsed if isinstance(completion.parsed, dict) else None
        if parsed is not None and all(n in parsed for n in self.rubric.names):
            return {REASONING: str(parsed.get(REASONING, "")), **{n: int(parsed[n]) for n in self.rubric.names}}
        return self.rubric.parse_lenient(completion.text or "")

    def check(self, records: list[Record]) -> list[Verdict]:
        verdicts = []
        for completion in self.answers(records):
            answer = self.parse(completion)
            if answer is None:
                self.usage["unparsed"] += 1
                why = completion.error or "no answer"
                verdicts.append(self.verdict(
                    True, None, f"judge: no verdict, kept for a person ({why})", rule="unparsed", parsed=False,
                    error=why, raw=(completion.text or "")[:300], model=self.usage["model"]))
                continue
            self.usage["parsed"] += 1
            verdicts.append(self._verdict(answer))
        return verdicts

    def _verdict(self, answer: dict[str, Any]) -> Verdict:
        scores = {n: answer[n] for n in self.rubric.names}
        keep = self.rubric.keeps(scores, self.thresholds)
        below = [n for n in self.rubric.names if scores[n] < self.thresholds[n]]
        details = {"scores": scores, "reasoning": answer[REASONING], "keep": keep,
                   "thresholds": dict(self.thresholds), "keep_rule": self.rubric.keep,
                   "meanings": {n: self.rubric.score(n).meaning(scores[n]) for n in self.rubric.names},
                   "mode": self.options["mode"], "model": self.usage["model"], "parsed": True}
        if self.reverse:
            details["options_order"] = "reversed"
        score = self.rubric.normalised(scores)
        if keep:
            return self.verdict(True, score, **details)
        low = "; ".join(f"{n} {scores[n]} < {self.thresholds[n]} ({self.rubric.score(n).meaning(scores[n])})"
                        for n in below)
        if self.options["mode"] == "flag":
            return self.verdict(True, score, f"judge would reject: {low}", rule="flagged", **details)
        return self.verdict(False, score, f"judge: {low}", rule="below_threshold", **details)

    def doubt(self, verdict: Verdict) -> float:
        if not verdict.passed:
            return 1.0
        if not verdict.details.get("parsed", True):
            return UNPARSED_DOUBT
        if verdict.details.get("keep") is False:
            return FLAGGED_DOUBT
        return 0.5 * (1.0 - float(verdict.score or 0.0))  # kept at the lowest passing marks: some doubt
