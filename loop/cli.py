"""The generation command's parser and `main(argv)`: `python generate.py ...` and `python -m loop ...`.

The work is `loop.generate.generate`; this module only turns flags into its arguments.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

from backends import BACKENDS
from backends.metering import format_usage
from backends.models import DEFAULT_MODEL
from core.errors import fail
from core.help import DefaultsHelpFormatter
from core.tasks import load_task
from generator.diversity import format_report
from loop.generate import generate
from review_app.calibration import calibrated_thresholds
from review_app.weights import weights_from

DESCRIPTION = "Generate labelled synthetic samples from seed examples: the data engineers' command."


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"expected comma-separated numbers, got '{text}'")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="generate.py", description=DESCRIPTION,
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--task", required=True, help="task name in tasks/ or a path to a task YAML")
    p.add_argument("--lang", required=True, help="language code of the samples (one of the task's)")
    count = p.add_mutually_exclusive_group(required=True)
    count.add_argument("--n", type=int, default=None,
                       help="number of candidates to generate, then validate (a re-run with a larger n extends)")
    count.add_argument("--accepted", type=int, default=None, metavar="N",
                       help="generate in rounds until N samples pass the validators (the judge too where the "
                            "chain has it), label-balanced; a re-run continues, a larger N extends")
    p.add_argument("--max-candidates", type=int, default=None, metavar="M",
                   help="with --accepted: the most candidates to generate (default 5 x N)")
    p.add_argument("--on-exhausted", choices=("return_partial", "fail"), default="return_partial",
                   help="with --accepted, when M candidates are spent: keep the accepted ones and exit 0, or exit 2")
    p.add_argument("--seeds", required=True, help="seed records (JSONL, e.g. the data stage's train.jsonl)")
    p.add_argument("--out", required=True, help="run folder: samples.jsonl, manifest.json, ...")
    p.add_argument("--backend", default="transformers", help=f"one of: {', '.join(BACKENDS)}")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="smollm2-135m / gemma3-270m (real weights, offline), tiny (random, fast), a Hub id or local "
                        "folder, or an API model name")
    p.add_argument("--device", default=None, help="transformers device, e.g. cpu or cuda (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="run seed: every draw (labels, seeds, attributes) derives from it")
    p.add_argument("--k", type=int, default=3, help="seed examples per prompt")
    p.add_argument("--templates", default="", help="comma-separated generation template ids (default: all)")
    p.add_argument("--samples-per-prompt", type=int, default=1, help="samples drawn from each prompt")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--temperature-mix", default="", help="e.g. 0.5,0.8,1.1: rotate temperatures across prompts")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="default: derived from the schema's length bounds so the JSON always closes")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per backend call")
    p.add_argument("--no-constrain", action="store_true", help="free generation, then parse (for comparison)")
    p.add_argument("--max-cost-usd", type=float, default=None, help="openai backend: stop cleanly at this spend")
    p.add_argument("--openai-key-file", default=None, metavar="PATH",
                   help="openai backend: read the API key from this file (first line) instead of OPENAI_API_KEY; "
                        "with --ray every node reads it at this path itself (the key never enters the job)")
    p.add_argument("--price-per-1k", default=None,
                   help="openai backend: 'IN,OUT' USD per 1k tokens for a model missing from backends/pricing.py")
    p.add_argument("--reference", action="append", default=[], metavar="FILE",
                   help="records the validators compare with besides the seeds (repeatable); pass the eval "
                        "split so that samples near an eval item are rejected as contamination")
    p.add_argument("--weights-from", metavar="REVIEW_DB", default=None,
                   help="draw templates and attribute values in proportion to how often reviewers accepted "
                        "them in this review database (smoothed; recorded in manifest.json as plan.weights)")
    p.add_argument("--judge", action="store_true",
                   help="run the LLM judge (the task's rubric) after the cheap validators, on the generator's model")
    p.add_argument("--judge-model", default=None, help="the judge's model (implies --judge; default: --model)")
    p.add_argument("--judge-backend", default=None, help="the judge's backend (implies --judge; default: --backend)")
    p.add_argument("--judge-mode", choices=("filter", "flag"), default=None,
                   help="filter: reject what the judge's keep rule fails; flag: record it, reject nothing (to "
                        "calibrate against reviewers; implies --judge; default: the task's)")
    p.add_argument("--judge-calibrated-from", metavar="REVIEW_DB", default=None,
                   help="judge with the thresholds that agree best with the reviewers' decisions in this review "
                        "database (implies --judge; recorded in manifest.json under judge.calibrated_from)")
    p.add_argument("--data-value", metavar="EVAL", default=None,
                   help="a real held-out split (e.g. runs/fin/data/eval.jsonl): after validation, write the "
                        "data-value report of the accepted samples (fidelity, near-copies, utility of a cheap "
                        "classifier) into OUT/data_value/")
    p.add_argument("--data-value-real", metavar="FILE", default=None,
                   help="with --data-value: the real training records to compare with (default: --seeds)")
    p.add_argument("--no-validate", action="store_true", help="skip the validator chain")
    p.add_argument("--no-review", action="store_true", help="do not fill the review queue")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="generate on a Ray cluster (pip install -e '.[ray]'): a local one without ADDRESS, "
                        "'auto' for the one `ray start --head` started here, or ray://HOST:10001")
    p.add_argument("--ray-workers", type=int, default=None,
                   help="Ray workers, one backend each (default: the cluster's CPUs; GPUs for vllm)")
    p.add_argument("--redis-url", default=None,
                   help="keep the near-duplicate MinHash LSH index in Redis, e.g. redis://localhost:6379/0; "
                        "with --ray the check runs on the workers through it (same verdicts as one process)")
    return p


def _judge(args: argparse.Namespace) -> dict | None:
    """The judge's settings from the flags (None: the task's chain decides), thresholds calibrated first."""
    if not (args.judge or args.judge_model or args.judge_backend or args.judge_mode or args.judge_calibrated_from):
        return None
    if args.no_validate:
        fail("--judge runs with the validators: drop --no-validate")
    judge: dict = {"model": args.judge_model, "backend": args.judge_backend, "mode": args.judge_mode}
    if args.judge_calibrated_from:
        calibration = calibrated_thresholds(args.judge_calibrated_from, task=load_task(args.task).name)
        judge.update(thresholds=calibration["thresholds"], calibration=calibration)
        print(f"judge thresholds from {calibration['source']} ({calibration['decisions']} review decisions): "
              + ", ".join(f"{k} >= {v}" for k, v in calibration["thresholds"].items()))
    return judge


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    price = None
    if args.price_per_1k:
        price = _floats(args.price_per_1k)
        if len(price) != 2:
            fail(f"--price-per-1k takes 'IN,OUT' (two numbers), got '{args.price_per_1k}'")
    if args.backend not in BACKENDS:
        fail(f"unknown backend '{args.backend}' (available: {', '.join(BACKENDS)})")
    if args.n is not None and args.n <= 0:
        fail(f"--n must be a positive number of samples (got {args.n})")
    if args.accepted is not None and args.accepted <= 0:
        fail(f"--accepted must be a positive number of samples (got {args.accepted})")
    if args.accepted is None and args.max_candidates is not None:
        fail("--max-candidates goes with --accepted N")
    if args.accepted is not None and args.no_validate:
        fail("--accepted counts the samples that pass the validators: drop --no-validate")
    for flag, path in (("--data-value", args.data_value), ("--data-value-real", args.data_value_real)):
        if path and not Path(path).is_file():  # fail before the generation, not after it
            fail(f"{flag} {path}: file not found")
    if args.data_value and args.no_validate:
        fail("--data-value judges the accepted samples: it needs the validators (drop --no-validate)")
    judge = _judge(args)
    weights = None
    if args.weights_from:
        weights = weights_from(args.weights_from, task=load_task(args.task).name)
        print(f"sampling weights from {weights['source']}: {weights['decided_items']} reviewed items")
    try:
        result = _generate(args, judge, weights, price)
    except KeyboardInterrupt:
        _interrupted(args, argv)
    counts, usage = result.manifest["counts"], result.manifest["usage"]
    print(f"{result.out}/samples.jsonl: {counts['samples']} samples, {counts['parsed']} parsed, "
          f"{counts['failed']} failed, {counts['label_mismatch']} label mismatches; "
          f"status {result.manifest['status']}" + (f" ({result.manifest['stop_reason']})"
                                                   if result.manifest["stop_reason"] else ""))
    print(format_report(result.manifest["diversity"]))
    print("usage per stage (every session of this run):")
    print(format_usage(usage))
    if result.acceptance is not None:
        print(result.acceptance.line)
    return 0


def _interrupted(args: argparse.Namespace, argv: list[str] | None) -> NoReturn:
    """Ctrl-C: the run wrote what it had; say what is kept and the command that goes on."""
    manifest_path = Path(args.out) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    kept = manifest.get("counts", {}).get("samples", 0)
    accepted = manifest.get("acceptance", {}).get("accepted")
    total = manifest.get("usage", {}).get("total", {})
    cost = "unknown" if total and total.get("cost_usd") is None else f"${total.get('cost_usd', 0.0):.6f}"
    what = f"{kept} samples" + (f", {accepted} of {args.accepted} accepted" if accepted is not None else "")
    command = shlex.join(["python", "generate.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"interrupted: {what} and their verdicts, counts and cost ({cost}) are kept in {args.out}; "
          f"resume with: {command}", file=sys.stderr)
    raise SystemExit(130)


def _generate(args: argparse.Namespace, judge: dict | None, weights: dict | None, price: tuple | None) -> Any:
    return generate(
        task=args.task, lang=args.lang, n=args.n, accepted=args.accepted, max_candidates=args.max_candidates,
        on_exhausted=args.on_exhausted, seeds=args.seeds, out=args.out, model=args.model,
        backend=args.backend, validate=not args.no_validate, review=not args.no_review, progress=not args.quiet,
        references=args.reference, redis_url=args.redis_url, data_value_eval=args.data_value,
        data_value_real=args.data_value_real,
        seed=args.seed, k=args.k, templates=tuple(t for t in args.templates.split(",") if t),
        samples_per_prompt=args.samples_per_prompt, temperature=args.temperature, top_p=args.top_p,
        temperature_mix=_floats(args.temperature_mix), max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, constrained=not args.no_constrain, max_cost_usd=args.max_cost_usd,
        price_per_1k=price, device=args.device, ray=args.ray, ray_workers=args.ray_workers,
        api_key_file=args.openai_key_file, weights=weights, judge=judge,
    )
