"""`python -m validators judge-check`: is the LLM judge biased by option order, and does it see the label at all?

    python -m validators judge-check --task fin_sentiment --in runs/fin/data/eval.jsonl --limit 40 \\
        --backend transformers --model smollm2-135m [--max-changed 0.1] [--out judge_check.json]

Two checks on the same records, each a plain run of the `judge` validator:
- **order**: the judge runs twice, the rubric's options listed as written and reversed (in the prompt
  and in the answer's enums); the share of keep/reject verdicts that change is reported, per score too,
  and a judge above `--max-changed` is flagged: its verdicts follow where an option stands, not what
  it says.
- **labels** (records with a label, e.g. a real held-out split): each record is judged with its true
  label and with a wrong one (a seeded pick of another label). A judge that reads the label keeps the
  true ones and drops the wrong ones; `balanced_accuracy` 0.5 is chance. Per score, `pairs_true_higher`
  is the share of records whose true-label score beats the wrong one's (ties count half; 0.5 is
  chance), with a two-sided sign-test p over the untied pairs.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from typing import Any

from backends import get_backend
from backends.models import DEFAULT_MODEL
from core.io import write_json_atomic
from core.records import Record
from core.task_spec import Task
from core.tasks import load_task
from validators.base import Context, build
from validators.inputs import read_inputs

MAX_CHANGED = 0.1  # more than one verdict in ten moving with the option order flags the judge


def _judge(task: Task, records: list[Record], backend: Any, seed: int, **options: Any) -> list[Any]:
    validator = build("judge", task, options, Context(judge_backend=backend, seed=seed))
    return validator.check(records)


def _share(n: int, of: int) -> float | None:
    return round(n / of, 4) if of else None


def order_check(task: Task, records: list[Record], backend: Any, *, seed: int = 0,
                max_changed: float = MAX_CHANGED, first: list[Any] | None = None) -> dict[str, Any]:
    """The judge as written and with every score's options reversed: how many verdicts change.
    `first`: the as-written verdicts when the caller already has them."""
    first = first if first is not None else _judge(task, records, backend, seed)
    second = _judge(task, records, backend, seed, reverse_options=True)
    both = [(a, b) for a, b in zip(first, second, strict=True) if a.details.get("parsed") and b.details.get("parsed")]
    changed = sum(a.details["keep"] != b.details["keep"] for a, b in both)
    per_score = {}
    for name in task.rubric.names:
        moved = [b.details["scores"][name] - a.details["scores"][name] for a, b in both]
        per_score[name] = {"changed": _share(sum(m != 0 for m in moved), len(both)),
                           "mean_shift": round(sum(moved) / len(moved), 4) if moved else None}
    share = _share(changed, len(both))
    return {"records": len(records), "compared": len(both), "verdicts_changed": changed, "share_changed": share,
            "max_changed": max_changed, "flagged": share is not None and share > max_changed,
            "keep_rate": {"as_written": _share(sum(a.details["keep"] for a, _ in both), len(both)),
                          "reversed": _share(sum(b.details["keep"] for _, b in both), len(both))},
            "scores": per_score}


def wrong_label(task: Task, record: Record, seed: int) -> str:
    """Another label than the record's, drawn by (seed, record id): the same for every run."""
    others = [lab for lab in task.label_names if lab != record.labels.get(task.label_name)]
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{record.id}".encode()).digest()[:8], "little")
    return others[digest % len(others)]


def _sign_test(wins: int, losses: int) -> float | None:
    if wins + losses == 0:
        return None
    from scipy.stats import binomtest

    return round(float(binomtest(wins, wins + losses, 0.5).pvalue), 4)


def label_check(task: Task, records: list[Record], backend: Any, *, seed: int = 0,
                first: list[Any] | None = None) -> dict[str, Any]:
    """The judge on each record with its true label and with a wrong one: does it tell them apart?"""
    labelled = [r for r in records if r.labels.get(task.label_name) in task.labels]
    true = first if first is not None and len(labelled) == len(records) else _judge(task, labelled, backend, seed)
    swapped = [r.model_copy(update={"labels": {**r.labels, task.label_name: wrong_label(task, r, seed)}})
               for r in labelled]
    wrong = _judge(task, swapped, backend, seed)
    pairs = [(a, b) for a, b in zip(true, wrong, strict=True) if a.details.get("parsed") and b.details.get("parsed")]
    kept_true = sum(a.details["keep"] for a, _ in pairs)
    kept_wrong = sum(b.details["keep"] for _, b in pairs)
    rate_true, rate_wrong = _share(kept_true, len(pairs)), _share(kept_wrong, len(pairs))
    per_score = {}
    for name in task.rubric.names:
        diffs = [a.details["scores"][name] - b.details["scores"][name] for a, b in pairs]
        wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        per_score[name] = {
            "mean_true": round(sum(a.details["scores"][name] for a, _ in pairs) / len(pairs), 4) if pairs else None,
            "mean_wrong": round(sum(b.details["scores"][name] for _, b in pairs) / len(pairs), 4) if pairs else None,
            "pairs_true_higher": round((wins + 0.5 * (len(diffs) - wins - losses)) / len(diffs), 4) if diffs else None,
            "true_higher": wins, "wrong_higher": losses, "ties": len(diffs) - wins - losses,
            "sign_test_p": _sign_test(wins, losses)}
    balanced = None if not pairs else round(0.5 * (kept_true + len(pairs) - kept_wrong) / len(pairs), 4)
    return {"records": len(labelled), "compared": len(pairs), "keep_rate_true_label": rate_true,
            "keep_rate_wrong_label": rate_wrong, "balanced_accuracy": balanced, "chance": 0.5,
            "scores": per_score}


def sample(records: list[Record], limit: int | None, seed: int) -> list[Record]:
    """`limit` records drawn by the seed (all of them, in order, without a limit)."""
    if not limit or limit >= len(records):
        return records
    picked = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in picked]


def render(report: dict[str, Any]) -> str:
    lines = [f"judge-check: {report['task']} on {report['model']} ({report['records']} records)"]
    if "order" in report:
        o = report["order"]
        lines.append(f"order: {o['verdicts_changed']} of {o['compared']} verdicts change when the options are "
                     f"reversed ({o['share_changed']}; limit {o['max_changed']})"
                     + (" -> FLAGGED: the judge follows option position" if o["flagged"] else " -> ok"))
        lines.extend(f"  {n}: changed {s['changed']}, mean shift {s['mean_shift']}" for n, s in o["scores"].items())
    if "labels" in report:
        lab = report["labels"]
        lines.append(f"labels: keeps {lab['keep_rate_true_label']} of true-label and {lab['keep_rate_wrong_label']} of "
                     f"wrong-label records; balanced accuracy {lab['balanced_accuracy']} (chance 0.5)")
        lines.extend(f"  {n}: true-label score higher in {s['pairs_true_higher']} of pairs ({s['true_higher']} up, "
                     f"{s['wrong_higher']} down, {s['ties']} tied; sign test p={s['sign_test_p']})"
                     for n, s in lab["scores"].items())
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m validators judge-check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="task name (tasks/<name>.yaml) or path to a task YAML")
    p.add_argument("--in", dest="inputs", required=True, action="append", metavar="JSONL",
                   help="records to judge (repeatable); a real labelled split makes the label check meaningful")
    p.add_argument("--lang", help="only records in this language (and the language of plain rows)")
    p.add_argument("--limit", type=int, default=None, help="judge this many records, drawn by --seed")
    p.add_argument("--backend", default="transformers", help="the judge's backend: transformers, vllm or openai")
    p.add_argument("--model", default=DEFAULT_MODEL, help="the judge's model")
    p.add_argument("--device", help="device for the transformers backend (cpu, cuda)")
    p.add_argument("--checks", default="order,labels", help="comma-separated: order, labels")
    p.add_argument("--max-changed", type=float, default=MAX_CHANGED,
                   help="flag the judge when more than this share of verdicts changes with the option order")
    p.add_argument("--out", help="also write the report as JSON here")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample, the wrong labels and sampling")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    task = load_task(args.task)
    checks = {c.strip() for c in args.checks.split(",") if c.strip()}
    if not checks or checks - {"order", "labels"}:
        build_parser().error(f"--checks: expected order and/or labels, got '{args.checks}'")
    records = [r for path in args.inputs for r in read_inputs(path, task, lang=args.lang)]
    records = sample([r for r in records if args.lang is None or r.lang == args.lang], args.limit, args.seed)
    options: dict[str, Any] = {"model": args.model}
    if args.device:
        options["device"] = args.device
    backend = get_backend(args.backend, **options)
    report: dict[str, Any] = {"task": task.name, "model": args.model, "backend": args.backend,
                              "records": len(records), "seed": args.seed}
    first = _judge(task, records, backend, args.seed)  # as written, with each record's own label: shared
    if "order" in checks:
        report["order"] = order_check(task, records, backend, seed=args.seed, max_changed=args.max_changed,
                                      first=first)
    if "labels" in checks:
        report["labels"] = label_check(task, records, backend, seed=args.seed, first=first)
    if args.out:
        write_json_atomic(args.out, report)
    print(render(report))
    if report.get("order", {}).get("flagged"):
        print("warning: the judge's verdicts depend on the order of the rubric's options", file=sys.stderr)
    return 0
