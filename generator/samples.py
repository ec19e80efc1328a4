"""What a completion becomes: a sample `Record` with its provenance, and the manifest's counts of them.

    record = to_record(task, "en", plan, planner, completion, backend, plan.sampling.as_dict(), schema)
    counts = summarise(records, task)      # parsed, failed, per label / template / strategy, tokens
    batches = plan_batches(plans, 16)      # one backend call per batch: plans of one sampling, chunked

Used by `generator.runner` for every sample it writes to `samples.jsonl`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from backends import Backend, Completion, parse_with_schema
from core.records import Record
from core.task_spec import Task
from generator.prompts import Plan, Planner


def to_record(task: Task, lang: str, plan: Plan, planner: Planner, completion: Completion,
              backend: Backend, sampling: dict[str, Any], schema: Any) -> Record:
    """A sample record: parsed (text, labels) or failed (empty text, `provenance.error`), provenance filled."""
    provenance = planner.provenance(plan)
    provenance.update(model=backend.model_id, backend=backend.name, sampling=sampling,
                      finish_reason=completion.finish_reason,
                      tokens={"prompt": completion.prompt_tokens, "completion": completion.completion_tokens})
    if completion.extra:
        provenance["extra"] = completion.extra
    parsed, error = completion.parsed, completion.error
    if parsed is None and error is None:  # unconstrained backend: parse and validate here
        parsed, error = parse_with_schema(completion.text.strip(), schema)
    if parsed is None:
        provenance["error"] = error or "no output"
        provenance["raw_output"] = completion.text[:2000]
        return Record.new(task=task.name, lang=lang, text="", source="synthetic", provenance=provenance)
    labels = {k: str(v) for k, v in parsed.items() if k != task.input_name}
    if labels.get(task.label_name) != plan.target_label:
        provenance["label_mismatch"] = True  # flagged, not dropped: validators and reviewers decide
    return Record.new(task=task.name, lang=lang, text=str(parsed[task.input_name]), labels=labels,
                      source="synthetic", provenance=provenance)


def summarise(records: list[Record], task: Task) -> dict[str, Any]:
    """Counts for the manifest: parsed, failed, per label, template and strategy, tokens."""
    parsed = [r for r in records if not r.provenance.get("error")]
    tokens: Counter[str] = Counter()
    for r in records:
        tokens.update(r.provenance.get("tokens", {}))
    return {
        "samples": len(records), "parsed": len(parsed), "failed": len(records) - len(parsed),
        "parse_rate": round(len(parsed) / len(records), 4) if records else None,
        "label_mismatch": sum(1 for r in parsed if r.provenance.get("label_mismatch")),
        "by_label": dict(Counter(r.labels.get(task.label_name) for r in parsed)),
        "by_target_label": dict(Counter(r.provenance.get("target_label") for r in records)),
        "by_template": dict(Counter(r.provenance.get("template_id") for r in records)),
        "by_strategy": dict(Counter(r.provenance.get("sampling", {}).get("strategy") for r in records)),
        "errors": dict(Counter(str(r.provenance["error"]).split(":")[0] for r in records if r.provenance.get("error"))),
        "tokens": {"prompt": tokens["prompt"], "completion": tokens["completion"]},
    }


def plan_batches(plans: list[Plan], size: int) -> list[list[Plan]]:
    """Plans grouped by sampling parameters (one backend call takes one `Sampling`), then chunked."""
    groups: dict[tuple[float, float], list[Plan]] = {}
    for plan in plans:
        groups.setdefault((plan.sampling.temperature, plan.sampling.top_p), []).append(plan)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
