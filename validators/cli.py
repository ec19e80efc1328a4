"""`python -m validators`: run a task's validator chain on a JSONL file and write the verdicts.

`python -m validators judge-check ...` is the LLM judge's bias check (validators/judge_check.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from backends import get_backend
from backends.models import DEFAULT_MODEL
from core.errors import fail
from core.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from core.tasks import load_task
from validators.chain import run_chain
from validators.inputs import read_inputs, split_from_name
from validators.report import render_markdown

EPILOG = """examples:
  python -m validators --task fin_sentiment --in runs/fin/samples.jsonl --out runs/fin/validated \\
      --reference runs/fin/data/train.jsonl --reference runs/fin/data/eval.jsonl
  python -m validators --task fin_sentiment --in samples.jsonl --out out --backend transformers --model tiny
  python -m validators --task fin_sentiment --in samples.jsonl --out out --set near_duplicates.threshold=0.8
  python -m validators --task fin_sentiment --in samples.jsonl --out out --judge-model smollm2-135m
  python -m validators judge-check --task fin_sentiment --in eval.jsonl --limit 40 --model smollm2-135m

writes OUT/accepted.jsonl, OUT/rejected.jsonl (every record with all its verdicts and meta.doubt),
OUT/report.json and OUT/report.md (counts per validator and rule, examples)."""


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set near_duplicates.threshold=0.8` → {"near_duplicates": {"threshold": 0.8}} (values are YAML)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, option = key.partition(".")
        if not sep or not dot or not name or not option:
            fail(f"--set {item}: expected VALIDATOR.OPTION=VALUE, e.g. near_duplicates.threshold=0.8")
        out.setdefault(name, {})[option] = yaml.safe_load(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m validators", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="task name (tasks/<name>.yaml) or path to a task YAML")
    p.add_argument("--in", dest="inputs", required=True, action="append", metavar="JSONL",
                   help="records to validate (repeatable); plain {text, label} rows are accepted too")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--reference", action="append", default=[], metavar="JSONL",
                   help="seed/train or eval records (repeatable); a record's split decides, else the file "
                        "name (eval/test/val → eval, anything else → train)")
    p.add_argument("--eval-reference", action="append", default=[], metavar="JSONL",
                   help="eval records, whatever their split or name: near copies are contamination")
    p.add_argument("--lang", help="language of plain rows that have no 'lang' field")
    p.add_argument("--backend", help="model backend for self_consistency (e.g. transformers); "
                                     "without one, self_consistency is skipped with a notice")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model for --backend (smollm2-135m: real, offline; tiny: random)")
    p.add_argument("--device", help="device for the transformers backend (cpu, cuda)")
    p.add_argument("--judge-model", help="turn the LLM judge on (the task's `rubric:`) with this model "
                                         "(default with --enable judge: --model)")
    p.add_argument("--judge-backend", help="the judge model's backend (default: --backend, else transformers)")
    p.add_argument("--redis-url", help="keep the MinHash LSH index in Redis, e.g. redis://localhost:6379/0")
    p.add_argument("--only", help="comma-separated validators to run (default: the task's chain)")
    p.add_argument("--skip", default="", help="comma-separated validators to leave out")
    p.add_argument("--enable", default="", help="comma-separated optional validators to add, e.g. neighbour_agreement")
    p.add_argument("--embedding-model", help="sentence-transformers model for neighbour_agreement "
                                             "(default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="VALIDATOR.OPTION=VALUE",
                   help="override a validator option from the task YAML (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _backend(name: str, model: str, device: str | None) -> Any:
    options: dict[str, Any] = {"model": model}
    if device and name != "openai":  # a chat API has no device
        options["device"] = device
    return get_backend(name, **options)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["judge-check"]:
        from validators.judge_check import main as judge_check

        return judge_check(argv[1:])
    args = build_parser().parse_args(argv)
    task = load_task(args.task)
    records = [r for path in args.inputs for r in read_inputs(path, task, lang=args.lang, source="synthetic")]
    references = [r for path in args.reference for r in read_inputs(path, task, lang=args.lang, split=split_from_name(path))]
    for path in args.eval_reference:
        evals = read_inputs(path, task, lang=args.lang)
        for rec in evals:
            rec.split = "eval"
        references.extend(evals)
    overrides = parse_set(args.sets)
    if args.embedding_model:
        overrides.setdefault("neighbour_agreement", {})["model"] = args.embedding_model
    backend = _backend(args.backend, args.model, args.device) if args.backend else None
    enable = _csv(args.enable)
    judge_backend = None
    if args.judge_model or args.judge_backend:
        enable.append("judge")
        judge_backend = _backend(args.judge_backend or args.backend or "transformers",
                                 args.judge_model or args.model, args.device)
    accepted, rejected, report = run_chain(
        task, records, references, backend, overrides=overrides, only=_csv(args.only) or None,
        skip=_csv(args.skip), enable=enable, seed=args.seed, redis_url=args.redis_url,
        judge_backend=judge_backend, progress=not args.quiet,
    )
    report["inputs"] = [str(p) for p in args.inputs]
    report["references"]["files"] = [*args.reference, *args.eval_reference]
    report["references"]["eval"] = sum(1 for r in references if r.split == "eval")
    write_jsonl_atomic(args.out / "accepted.jsonl", accepted)
    write_jsonl_atomic(args.out / "rejected.jsonl", rejected)
    write_json_atomic(args.out / "report.json", report)
    markdown = render_markdown(report)
    write_text_atomic(args.out / "report.md", markdown)
    print(markdown)
    print(f"wrote {args.out}/accepted.jsonl ({len(accepted)}), rejected.jsonl ({len(rejected)}), report.json, report.md",
          file=sys.stderr)
    return 0
