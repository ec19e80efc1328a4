"""The validator chain of a task: run each configured validator, attach verdicts and a doubt score.

    accepted, rejected, report = run_chain(task, records, references=refs, backend=backend)

Cheap validators see every record; expensive ones (`self_consistency`, `neighbour_agreement`, `judge`) only
the records that passed everything before them, so the model is never asked about a sample that
is already out. Validators that need a model are skipped, with a notice, when `backend` is None.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from core.errors import fail
from core.records import Record
from core.task_spec import Task
from validators.base import REGISTRY, BaseValidator, Context, build
from validators.report import build_report

OPTIONAL = {"neighbour_agreement"}  # off unless the task YAML or `enable` names them


def chain_spec(
    task: Task,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    enable: Iterable[str] = (),
) -> list[tuple[str, dict[str, Any]]]:
    """The (name, options) list to run: the task's `validators:` (those not `enabled: false`) plus
    `enable`, minus `skip`, restricted to `only`, with `overrides[name]` merged into each validator's
    options."""
    # An entry with `enabled: false` is configured but off until `enable` names it.
    spec = [(str(v["name"]), {k: val for k, val in v.items() if k not in ("name", "enabled")})
            for v in task.validators if v.get("enabled", True) or v["name"] in set(enable)]
    names = [n for n, _ in spec]
    for name in enable:
        if name not in names:
            spec.append((name, {}))
            names.append(name)
    for name in [*(only or []), *skip, *enable, *(overrides or {})]:
        if name not in REGISTRY:
            fail(f"unknown validator '{name}' (available: {', '.join(REGISTRY)})")
    only_set = set(only) if only else None
    chosen = [(n, o) for n, o in spec if n not in set(skip) and (only_set is None or n in only_set)]
    return [(n, {**o, **(overrides or {}).get(n, {})}) for n, o in chosen]


def combine_doubt(doubts: Iterable[float]) -> float:
    """Noisy-or of per-validator doubts: several weak signals add up, one strong one dominates."""
    keep = 1.0
    for d in doubts:
        keep *= 1.0 - max(0.0, min(1.0, d))
    return round(1.0 - keep, 4)


def run_chain(
    task: Task,
    records: list[Record],
    references: list[Record] | None = None,
    backend: Any = None,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    enable: Iterable[str] = (),
    seed: int = 0,
    redis_url: str | None = None,
    workers: Any = None,
    judge_backend: Any = None,
    progress: bool = True,
) -> tuple[list[Record], list[Record], dict[str, Any]]:
    """Validate `records` (copies are returned; the inputs are not changed).

    `judge_backend`: the model the `judge` validator asks (default: `backend`).

    Returns:
        (accepted, rejected, report). Every returned record carries the verdicts of the validators
        that judged it (earlier verdicts of the same names are replaced) and `meta["doubt"]` in 0..1
        (1.0 for rejected records). The report counts checks, rejections per validator and rule,
        with examples; see `validators.report.build_report`.
    """
    context = Context(references=list(references or []), backend=backend, seed=seed, redis_url=redis_url,
                      workers=workers, judge_backend=judge_backend)
    spec = chain_spec(task, overrides=overrides, only=only, skip=skip, enable=enable)
    validators: list[BaseValidator] = [build(name, task, options, context) for name, options in spec]
    names = {v.name for v in validators}
    out = [r.model_copy(deep=True) for r in records]
    for rec in out:
        rec.verdicts = [v for v in rec.verdicts if v.name not in names]

    skipped: dict[str, str] = {}
    checked: dict[str, int] = {}
    usage: dict[str, dict[str, Any]] = {}
    for validator in tqdm(validators, desc="validators", unit="check", disable=not progress, file=sys.stderr):
        if validator.needs_backend and validator.model is None:
            skipped[validator.name] = "no model backend given (--backend transformers --model tiny to run it)"
            print(f"notice: skipping {validator.name}: {skipped[validator.name]}", file=sys.stderr)
            continue
        targets = [r for r in out if r.passed] if validator.expensive else out
        checked[validator.name] = len(targets)
        verdicts = validator.check(targets)
        if len(verdicts) != len(targets):
            raise RuntimeError(f"validator {validator.name} returned {len(verdicts)} verdicts for {len(targets)} records")
        for rec, verdict in zip(targets, verdicts, strict=True):
            rec.verdicts.append(verdict)
        if hasattr(validator, "usage"):  # a model-based check's tokens and spend (the run's manifest)
            usage[validator.name] = validator.usage

    by_name = {v.name: v for v in validators}
    for rec in out:
        if rec.passed:
            rec.meta["doubt"] = combine_doubt(by_name[v.name].doubt(v) for v in rec.verdicts if v.name in by_name)
        else:
            rec.meta["doubt"] = 1.0
    accepted = [r for r in out if r.passed]
    rejected = [r for r in out if not r.passed]
    report = build_report(task, out, [v.name for v in validators], checked=checked, skipped=skipped,
                          references=context.references)
    for name, used in usage.items():
        report["validators"][name]["usage"] = used
    return accepted, rejected, report
