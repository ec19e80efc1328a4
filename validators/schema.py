"""`schema`: the record has the task's shape: known language, label in the set, bounded text and outputs."""

from __future__ import annotations

from typing import Any, ClassVar

from core.records import Record, Verdict
from validators.base import BaseValidator


class SchemaValidator(BaseValidator):
    """Fails on the first structural problem; passing records get score 1.0."""

    name = "schema"
    defaults: ClassVar[dict[str, Any]] = {"min_chars": None, "max_chars": None}

    def check(self, records: list[Record]) -> list[Verdict]:
        return [self._one(r) for r in records]

    def _one(self, record: Record) -> Verdict:
        task = self.task
        low = self.options["min_chars"] or task.input_min_chars
        high = self.options["max_chars"] or task.input_max_chars
        label = self.claimed_label(record)
        text = record.text.strip()
        problems: list[tuple[str, dict]] = []
        if record.task != task.name:
            problems.append((f"task '{record.task}' is not '{task.name}'", {"field": "task"}))
        if record.lang not in task.languages:
            problems.append((f"language '{record.lang}' not in {list(task.languages)}", {"field": "lang"}))
        if label is None:
            problems.append((f"missing label '{task.label_name}'", {"field": task.label_name}))
        elif label not in task.labels:
            problems.append((f"label '{label}' not in {task.label_names}", {"field": task.label_name}))
        if len(text) < low:
            problems.append((f"text too short ({len(text)} < {low} chars)", {"field": "text", "chars": len(text)}))
        elif len(text) > high:
            problems.append((f"text too long ({len(text)} > {high} chars)", {"field": "text", "chars": len(text)}))
        for out in task.outputs.values():
            value = (record.labels.get(out.name) or "").strip()
            if not value:
                problems.append((f"missing output '{out.name}'", {"field": out.name}))
            elif len(value) > out.max_chars:
                problems.append((f"output '{out.name}' too long ({len(value)} > {out.max_chars} chars)",
                                 {"field": out.name}))
        if problems:
            reason, details = problems[0]
            return self.verdict(False, 0.0, reason, rule=f"bad_{details['field']}", problems=[p for p, _ in problems], **details)
        return self.verdict(True, 1.0)
