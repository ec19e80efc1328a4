"""The validator chain of a task: run each configured validator, attach verdicts and a doubt score.

    accepted, rejected, report = run_chain(task, records, references=refs, backend=backend)
    chain = Chain(task, refs, backend)          # built once, run per round (generate.py --accepted)
    accepted, rejected, report = chain.run(batch, earlier=accepted_so_far)

Cheap validators see every record; expensive ones (`self_consistency`, `neighbour_agreement`, `judge`) only
the records that passed everything before them, so the model is never asked about a sample that
is already out. Validators that need a model are skipped, with a notice, when `backend` is None.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from backends.metering import MeteredBackend
from core.errors import fail
from core.records import Record
from core.task_spec import Task
from validators.base import REGISTRY, BaseValidator, Context, build
from validators.report import build_report


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


class Chain:
    """A task's validators built once, run on batch after batch (the rounds of `generate.py --accepted`).

    Each validator keeps what it measured once (self-consistency's competence, the seeds' embeddings) and
    asks its models through a `backends.metering.MeteredBackend`, so `usage` is the chain's table of
    calls, tokens, seconds and dollars per validator, summed over every `run`.
    """

    def __init__(self, task: Task, references: list[Record] | None = None, backend: Any = None, *,
                 overrides: dict[str, dict[str, Any]] | None = None, only: Iterable[str] | None = None,
                 skip: Iterable[str] = (), enable: Iterable[str] = (), seed: int = 0, redis_url: str | None = None,
                 workers: Any = None, judge_backend: Any = None):
        self.task = task
        self.context = Context(references=list(references or []), backend=backend, seed=seed, redis_url=redis_url,
                               workers=workers, judge_backend=judge_backend)
        spec = chain_spec(task, overrides=overrides, only=only, skip=skip, enable=enable)
        self.validators: list[BaseValidator] = []
        for name, options in spec:
            validator = build(name, task, options, dataclasses.replace(self.context))
            own = validator.context  # its own copy: its models counted into its own usage row
            if own.backend is not None:
                own.backend = MeteredBackend(own.backend, validator.stage)
            if own.judge_backend is not None:
                own.judge_backend = MeteredBackend(own.judge_backend, validator.stage)
            self.validators.append(validator)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.validators]

    @property
    def usage(self) -> dict[str, dict[str, Any]]:
        """Per validator that asked a model or an encoder: its usage row (`backends.metering`)."""
        rows = {}
        for v in self.validators:
            if v.stage["calls"] or v.stage["texts"]:
                row = dict(v.stage)
                if isinstance(getattr(v, "usage", None), dict):  # the judge's own account: mode, parsed, ...
                    row["details"] = {k: val for k, val in v.usage.items()
                                      if k not in ("tokens", "cost_usd", "model", "backend")}
                rows[v.name] = row
        return rows

    def run(self, records: list[Record], *, earlier: list[Record] = (), progress: bool = True
            ) -> tuple[list[Record], list[Record], dict[str, Any]]:
        """Validate `records` (copies are returned) against the references and the `earlier` accepted samples."""
        for validator in self.validators:
            validator.context.earlier = list(earlier)
        names = set(self.names)
        out = [r.model_copy(deep=True) for r in records]
        for rec in out:
            rec.verdicts = [v for v in rec.verdicts if v.name not in names]

        skipped: dict[str, str] = {}
        checked: dict[str, int] = {}
        usage: dict[str, dict[str, Any]] = {}
        for validator in tqdm(self.validators, desc="validators", unit="check", disable=not progress, file=sys.stderr):
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
            if hasattr(validator, "usage"):  # a model-based check's own account (the judge's)
                usage[validator.name] = validator.usage

        by_name = {v.name: v for v in self.validators}
        for rec in out:
            if rec.passed:
                rec.meta["doubt"] = combine_doubt(by_name[v.name].doubt(v) for v in rec.verdicts if v.name in by_name)
            else:
                rec.meta["doubt"] = 1.0
        accepted = [r for r in out if r.passed]
        rejected = [r for r in out if not r.passed]
        report = self.report(out, checked=checked, skipped=skipped)
        for name, used in usage.items():
            report["validators"][name]["usage"] = used
        return accepted, rejected, report

    def report(self, records: list[Record], *, checked: dict[str, int], skipped: dict[str, str]) -> dict[str, Any]:
        """The report of `records` already validated (one run's, or every round's together)."""
        report = build_report(self.task, records, self.names, checked=checked, skipped=skipped,
                              references=self.context.references)
        report["usage"] = self.usage
        return report


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
        with examples (see `validators.report.build_report`), and the models' `usage` per validator.
    """
    chain = Chain(task, references, backend, overrides=overrides, only=only, skip=skip, enable=enable, seed=seed,
                  redis_url=redis_url, workers=workers, judge_backend=judge_backend)
    return chain.run(records, progress=progress)
