"""Generate labelled synthetic samples from seed examples: the data engineers' command.

    python generate.py --task fin_sentiment --lang en --n 500 --model tiny \\
        --seeds runs/fin/data/train.jsonl --out runs/fin/synthetic

Writes `<out>/samples.jsonl` (every sample, parsed or not, appended as it goes) and
`<out>/manifest.json` (config, versions, counts, tokens, time, diversity). Re-running the same
command after a crash continues where it stopped. Then, when the packages exist, it runs the
task's validator chain (`accepted.jsonl`, `rejected.jsonl`, `validation.json`) and queues the
accepted samples for review (`review.db`). From Python: `generate(task=..., lang=..., n=..., ...)`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from core.errors import fail, run_cli
from core.tasks import load_task
from generator.backends import BACKENDS
from generator.diversity import format_report
from generator.prompts import PlanConfig
from generator.runner import RunConfig, RunResult, default_max_new_tokens, run_generation


def generate(*, task: str, lang: str, n: int, seeds: str | Path, out: str | Path, model: str = "tiny",
             backend: str = "transformers", validate: bool = True, review: bool = True,
             references: list[str | Path] = (), progress: bool = True, **options: Any) -> RunResult:
    """Run (or resume) a generation, then the validators and the review queue when available.

    `references` are record files the validators compare with besides the seeds: rows whose `split`
    is eval/test/dev are contamination checks (a sample near one is rejected).
    `options` are `RunConfig` fields (batch_size, constrained, max_cost_usd, price_per_1k, device)
    or `PlanConfig` fields (seed, k, templates, samples_per_prompt, temperature, top_p,
    temperature_mix, max_new_tokens, weights: sampling weights from `review_app.weights`).
    """
    plan_fields = set(PlanConfig.__dataclass_fields__)
    plan_opts = {k: v for k, v in options.items() if k in plan_fields and v is not None}
    run_opts = {k: v for k, v in options.items() if k not in plan_fields}
    unknown = set(run_opts) - set(RunConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown generate() options: {', '.join(sorted(unknown))}")
    if plan_opts.get("max_new_tokens") is None:
        plan_opts["max_new_tokens"] = default_max_new_tokens(load_task(task))
    cfg = RunConfig(task=task, lang=lang, n=n, seeds=Path(seeds), out=Path(out), model=model, backend=backend,
                    plan=PlanConfig(**plan_opts), **run_opts)
    result = run_generation(cfg, progress=progress)
    post_process(result, cfg, validate=validate, review=review, references=references)
    return result


def post_process(result: RunResult, cfg: RunConfig, *, validate: bool, review: bool,
                 references: list[str | Path] = ()) -> None:
    """The task's validator chain on the parsed samples, then the review queue for the accepted ones."""
    records = result.parsed  # failed rows stay in samples.jsonl with their reason; only parsed go on
    if not validate or importlib.util.find_spec("validators.chain") is None or not records:
        return
    from core.io import read_records, write_json_atomic, write_jsonl_atomic
    from generator.seeds import load_seeds
    from validators.chain import run_chain

    task = load_task(cfg.task)
    known = load_seeds(cfg.seeds, task, cfg.lang)
    for path in references:
        known += read_records(path)
    # Self-consistency asks the generation model itself: reuse the one already loaded (a second vLLM
    # engine would not fit beside the first); a resumed run with nothing left to generate loads it.
    backend = result.backend
    if backend is None and cfg.backend != "openai":
        from generator.backends import get_backend

        backend = get_backend(cfg.backend, **({"model": cfg.model, "device": cfg.device}
                                              if cfg.backend == "transformers" else {"model": cfg.model}))
    accepted, rejected, report = run_chain(task, records, references=known, backend=backend,
                                           seed=cfg.plan.seed)
    write_jsonl_atomic(cfg.out / "accepted.jsonl", accepted)
    write_jsonl_atomic(cfg.out / "rejected.jsonl", rejected)
    write_json_atomic(cfg.out / "validation.json", report)
    print(f"validation: {len(accepted)} accepted, {len(rejected)} rejected -> {cfg.out}/accepted.jsonl")
    if not review or importlib.util.find_spec("review_app.store") is None or not accepted:
        return
    from review_app.store import ReviewStore

    store = ReviewStore(cfg.out / "review.db")
    try:
        queued = store.enqueue(accepted, seed=cfg.plan.seed, source_file=str(cfg.out / "accepted.jsonl"))
    finally:
        store.close()
    print(f"review queue: {queued.added} added ({queued.skipped} already there) -> {cfg.out}/review.db")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"expected comma-separated numbers, got '{text}'")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="generate.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", required=True, help="task name in tasks/ or a path to a task YAML")
    p.add_argument("--lang", required=True, help="language code of the samples (one of the task's)")
    p.add_argument("--n", type=int, required=True, help="number of samples (a re-run with a larger n extends)")
    p.add_argument("--seeds", required=True, help="seed records (JSONL, e.g. the data stage's train.jsonl)")
    p.add_argument("--out", required=True, help="run folder: samples.jsonl, manifest.json, ...")
    p.add_argument("--backend", default="transformers", help=f"one of: {', '.join(BACKENDS)}")
    p.add_argument("--model", default="tiny", help="'tiny' (offline), a Hub id or local folder, or an API model name")
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
    p.add_argument("--price-per-1k", default=None,
                   help="openai backend: 'IN,OUT' USD per 1k tokens for a model missing from generator/pricing.py")
    p.add_argument("--reference", action="append", default=[], metavar="FILE",
                   help="records the validators compare with besides the seeds (repeatable); pass the eval "
                        "split so that samples near an eval item are rejected as contamination")
    p.add_argument("--weights-from", metavar="REVIEW_DB", default=None,
                   help="draw templates and attribute values in proportion to how often reviewers accepted "
                        "them in this review database (smoothed; recorded in manifest.json as plan.weights)")
    p.add_argument("--no-validate", action="store_true", help="skip the validator chain")
    p.add_argument("--no-review", action="store_true", help="do not fill the review queue")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    price = None
    if args.price_per_1k:
        price = _floats(args.price_per_1k)
        if len(price) != 2:
            fail(f"--price-per-1k takes 'IN,OUT' (two numbers), got '{args.price_per_1k}'")
    if args.backend not in BACKENDS:
        fail(f"unknown backend '{args.backend}' (available: {', '.join(BACKENDS)})")
    if args.n <= 0:
        fail(f"--n must be a positive number of samples (got {args.n})")
    weights = None
    if args.weights_from:
        from review_app.weights import weights_from

        weights = weights_from(args.weights_from, task=load_task(args.task).name)
        print(f"sampling weights from {weights['source']}: {weights['decided_items']} reviewed items")
    result = generate(
        task=args.task, lang=args.lang, n=args.n, seeds=args.seeds, out=args.out, model=args.model,
        backend=args.backend, validate=not args.no_validate, review=not args.no_review, progress=not args.quiet,
        references=args.reference,
        seed=args.seed, k=args.k, templates=tuple(t for t in args.templates.split(",") if t),
        samples_per_prompt=args.samples_per_prompt, temperature=args.temperature, top_p=args.top_p,
        temperature_mix=_floats(args.temperature_mix), max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, constrained=not args.no_constrain, max_cost_usd=args.max_cost_usd,
        price_per_1k=price, device=args.device, weights=weights,
    )
    counts = result.manifest["counts"]
    print(f"{result.out}/samples.jsonl: {counts['samples']} samples, {counts['parsed']} parsed, "
          f"{counts['failed']} failed, {counts['label_mismatch']} label mismatches; "
          f"tokens {counts['tokens']['prompt']} in / {counts['tokens']['completion']} out; "
          f"status {result.manifest['status']}" + (f" ({result.manifest['stop_reason']})"
                                                   if result.manifest["stop_reason"] else ""))
    print(format_report(result.manifest["diversity"]))
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
