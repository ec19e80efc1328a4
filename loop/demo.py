"""The whole loop, stage by stage: what `python demo.py` runs (`loop.demo.run_demo(args)`).

    data -> generate + validate + queue -> review -> export -> train -> evaluate -> ablation -> data value -> summary

Each stage prints `== [k/N] name` and records itself in `<out>/.stages/<name>.json` when it has
finished; a re-run reuses every finished stage whose settings are unchanged (and re-runs the ones
after a changed one). `<out>/summary.json` holds every headline number and artifact path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from backends.models import REPO_ROOT, is_tiny
from core.errors import fail
from core.io import read_records, write_json_atomic, write_jsonl_atomic
from data.prepare import DEFAULT_SOURCE_DIR, prepare
from evaluator.data_value import data_value
from evaluator.run import evaluate
from evaluator.summary import (
    compare_predictions,
    data_value_headline,
    headline,
    paired_headline,
    print_summary,
)
from loop.generate import generate
from review_app.export import export_curated
from review_app.store import ReviewStore
from trainer.config import TrainConfig
from trainer.sft import train

TASK = "fin_sentiment"
SYNTH_LANG = "en"
AUTO = "auto"  # the named reviewer of the unattended demo step
SAMPLES = REPO_ROOT / "data" / "samples"
# (train, eval) per language. "cpu": a real model on this machine's CPU (smollm2-135m: three LoRA runs and four
# evaluations in the 20-minute budget, docs/findings.md); "full": the mission's sizes (GPU, or the tiny model);
# "samples": data/samples, 60 rows per language.
SIZES = {"full": (3000, 250), "cpu": (150, 100), "samples": (40, 10)}


def demo_sizes(model: str, *, on_samples: bool, full: bool) -> tuple[int, int]:
    """Real records per language (train, eval) for the demo of `model`."""
    if on_samples and not full:
        return SIZES["samples"]
    if full or is_tiny(model):
        return SIZES["full"]
    import torch

    return SIZES["full"] if torch.cuda.is_available() else SIZES["cpu"]


class Stages:
    """Runs stages in order; a stage whose marker exists with the same settings is reused."""

    def __init__(self, out: Path, total: int):
        self.out, self.total, self.k = out, total, 0
        self.dirty = False  # once a stage re-runs, every later stage re-runs too
        self.timings: dict[str, dict[str, Any]] = {}

    def run(self, name: str, title: str, settings: dict[str, Any],
            fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.k += 1
        print(f"\n== [{self.k}/{self.total}] {title}", flush=True)
        marker = self.out / ".stages" / f"{name}.json"
        settings = json.loads(json.dumps(settings, default=str))
        if not self.dirty and marker.is_file():
            done = json.loads(marker.read_text())
            if done.get("settings") == settings:
                print(f"reused (finished earlier in {done['seconds']} s; delete {marker} to redo it)")
                self.timings[name] = {"seconds": done["seconds"], "reused": True}
                return done["result"]
        self.dirty = True
        start = time.perf_counter()
        result = fn()
        seconds = round(time.perf_counter() - start, 1)
        write_json_atomic(marker, {"settings": settings, "seconds": seconds, "result": result})
        self.timings[name] = {"seconds": seconds, "reused": False}
        print(f"done in {seconds} s")
        return result


# ---- stages -------------------------------------------------------------------------------------
def stage_data(out: Path, source: str, train_per_lang: int, eval_per_lang: int, seed: int) -> dict[str, Any]:
    print(f"source {source}: {train_per_lang} train + {eval_per_lang} eval per language")
    summary = prepare(task=TASK, sources=[source], out=out, train_per_lang=train_per_lang,
                      eval_per_lang=eval_per_lang, seed=seed)
    print(f"train {summary['train']}, eval {summary['eval']} -> {out / 'data'}")
    return {"train": summary["train"], "eval": summary["eval"], "cleaning": summary["cleaning"],
            "files": {**summary["files"], "summary": str(out / "data" / "prepare_summary.json")}}


def stage_generate(out: Path, seeds: str, eval_file: str, n: int, model: str, backend: str, seed: int) -> dict[str, Any]:
    folder = out / "synthetic"
    # The eval split is a reference so that a sample near an eval item is rejected as contamination.
    # With the eval split as data_value_eval, the accepted samples get their data-value report
    # (<folder>/data_value/) next to the review queue.
    result = generate(task=TASK, lang=SYNTH_LANG, n=n, seeds=seeds, out=folder, model=model, backend=backend,
                      validate=True, review=True, references=[eval_file], data_value_eval=eval_file, seed=seed)
    counts = result.manifest["counts"]
    report_path = folder / "validation.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    accepted = report.get("accepted", 0)
    if not report:  # nothing parsed: the validators had nothing to judge
        write_jsonl_atomic(folder / "accepted.jsonl", [])
    return {"generated": counts["samples"], "parsed": counts["parsed"], "failed": counts["failed"],
            "label_mismatch": counts["label_mismatch"], "validated_accepted": accepted,
            "validated_rejected": report.get("rejected", 0), "rejected_first_by": report.get("rejected_first_by", {}),
            "validators": {name: {key: v.get(key) for key in ("checked", "passed", "failed", "rules", "skipped",
                                                               "abstained", "abstained_because")
                                  if key in v} for name, v in report.get("validators", {}).items()},
            "queued": accepted, "diversity": result.manifest.get("diversity", {}),
            "cost": result.manifest.get("usage"),  # tokens, seconds and dollars per stage (backends.metering)
            "files": {"samples": str(folder / "samples.jsonl"), "manifest": str(folder / "manifest.json"),
                      "accepted": str(folder / "accepted.jsonl"), "rejected": str(folder / "rejected.jsonl"),
                      "validation": str(report_path), "review_db": str(folder / "review.db"),
                      "data_value": str(folder / "data_value" / "report.md")
                      if (folder / "data_value" / "report.md").is_file() else None}}


def unattended_decision(record: Any) -> tuple[str, str]:
    """(action, reason): approve only a unanimous self-consistency vote; reject everything else. Where the
    model abstained (its votes no better than chance on the seeds), the nearest real seeds decide instead:
    approve when their majority label is the claimed one."""
    verdict = record.verdict("self_consistency")
    if verdict is None:
        return "reject", "demo auto-review: no self-consistency verdict (the validator did not run)"
    if verdict.details.get("abstained"):
        neighbours = record.verdict("neighbour_agreement")
        if neighbours is None:
            return "reject", "demo auto-review: self-consistency abstained and no neighbour_agreement verdict"
        majority, claimed = neighbours.details.get("majority"), record.labels.get("label")
        if majority == claimed:
            return "approve", (f"demo auto-review: the model abstained; the nearest real seeds agree ('{claimed}', "
                               f"{neighbours.details.get('agreement', 0):.0%})")
        return "reject", f"demo auto-review: the model abstained; the nearest real seeds say '{majority}', claimed '{claimed}'"
    votes, k = verdict.details.get("votes", {}), verdict.details.get("k", 0)
    claimed = verdict.details.get("claimed")
    if k and votes.get(claimed, 0) == k:
        return "approve", f"demo auto-review: self-consistency unanimous ({k}/{k} for '{claimed}')"
    return "reject", (f"demo auto-review: self-consistency not unanimous ({votes.get(claimed, 0)}/{k} "
                      f"for '{claimed}')")


class WaitingForReview(Exception):
    """--human-review: the queue still has pending items; people review them, then the demo goes on."""


def stage_human_review(db: Path) -> dict[str, Any]:
    """Nothing is decided here: the stage finishes once people have decided every queued item."""
    if not db.is_file():
        return {"reviewer": "people", "db": str(db), "statuses": {}}
    store = ReviewStore(db)
    try:
        pending = len(store.list_items(status="pending"))
        statuses = store.counts("status")
    finally:
        store.close()
    if pending:
        raise WaitingForReview(f"{pending} items wait in the review queue")
    print(f"reviewed by people: {statuses}")
    return {"reviewer": "people", "db": str(db), "statuses": statuses,
            "approved": statuses.get("approved", 0) + statuses.get("edited", 0),
            "rejected": statuses.get("rejected", 0)}


def stage_review(db: Path) -> dict[str, Any]:
    print("DEMO ONLY: UNATTENDED REVIEW BY REVIEWER 'auto' (approve unanimous self-consistency, reject "
          "the rest); people review with the app instead, see the summary")
    if not db.is_file():
        print("no review queue (no sample passed the validators)")
        return {"approved": 0, "rejected": 0, "reviewer": AUTO, "db": str(db), "statuses": {}}
    store = ReviewStore(db)
    try:
        pending = len(store.list_items(status="pending"))
        with tqdm(total=pending, desc="auto review", unit="item") as bar:
            while (item := store.claim(AUTO)) is not None:
                action, reason = unattended_decision(item.record)
                store.decide(item.id, AUTO, action, reason=reason)
                bar.update()
        statuses = store.counts("status")  # the queue's state, decided in this run or an earlier one
    finally:
        store.close()
    approved, rejected = statuses.get("approved", 0) + statuses.get("edited", 0), statuses.get("rejected", 0)
    print(f"reviewer '{AUTO}': {approved} approved, {rejected} rejected")
    return {"approved": approved, "rejected": rejected, "reviewer": AUTO, "db": str(db), "statuses": statuses}


def stage_export(db: Path, curated: Path) -> dict[str, Any]:
    if not db.is_file():
        write_jsonl_atomic(curated, [])
        return {"records": 0, "out": str(curated)}
    store = ReviewStore(db)
    try:
        result = export_curated(store, curated)
    finally:
        store.close()
    print(f"{result['records']} curated records -> {curated}")
    return result


def train_settings(model: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """The resolved training config (the trainer's defaults included), so a changed default re-runs training."""
    cfg = TrainConfig(task=TASK, model=model, seed=seed, **{k: v for k, v in options.items() if v is not None})
    return {k: v for k, v in cfg.resolved().as_dict().items() if k not in ("out", "train")}


def stage_train(inputs: list[Path], adapter: Path, model: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    records = [r for path in inputs if path.stat().st_size for r in read_records(path)]  # curated may be empty
    print(f"training on {len(records)} records from {', '.join(str(p) for p in inputs)}")
    cfg = TrainConfig(task=TASK, model=model, out=str(adapter), seed=seed,
                      **{k: v for k, v in options.items() if v is not None})
    summary = train(cfg, records=records)
    print(f"{summary['steps']} steps, train loss {summary['train_loss']:.3f}, val loss "
          f"{summary['val_loss'] if summary['val_loss'] is None else round(summary['val_loss'], 3)}, "
          f"{summary['wall_clock_s']} s -> {adapter}")
    keys = ("steps", "epochs_done", "train_loss", "val_loss", "wall_clock_s", "tokens_per_s", "trainable_params",
            "total_params", "data")
    return {**{k: summary[k] for k in keys}, "records": len(records), "adapter": str(adapter),
            "config": {k: summary["config"][k] for k in ("learning_rate", "epochs", "max_steps", "batch_size",
                                                          "method", "lora_r")}}


def stage_evaluate(eval_file: Path, adapter: Path, out_dir: Path, model: str, backend: str, seed: int,
                   train_files: list[Path], compare_base: bool = True) -> dict[str, Any]:
    # The cheap baseline trains on the same records as the adapter (train_files).
    metrics = evaluate(TASK, eval_file, model=model, adapter=adapter, out_dir=out_dir, mode="score",
                       backend=backend, compare_base=compare_base, seed=seed, baseline_train=train_files)
    result: dict[str, Any] = {"n": metrics["n"], "majority": metrics["majority_baseline"],
                              "metrics": str(out_dir / "metrics.json"), "report": str(out_dir / "report.md"),
                              "predictions": str(out_dir / "predictions.jsonl")}
    for name in ("base", "tuned"):
        if name in metrics:
            result[name] = headline(metrics[name])
    if "paired" in metrics:
        result["paired"] = paired_headline(metrics["paired"])
    if metrics.get("baseline"):
        result["baseline"] = headline(metrics["baseline"])
        result["paired_baseline"] = {"model": metrics["paired_baseline"]["model"],
                                     **paired_headline(metrics["paired_baseline"])}
    return result


def stage_data_value(train_file: Path, eval_file: Path, curated: Path, out: Path, seed: int,
                     ablation: bool) -> dict[str, Any]:
    """The data-value report of the curated set; with the ablation, the LLM's gap recovered too."""
    llm = {"llm_eval": out / "eval", "llm_reference": out / "ablation" / "eval"} if ablation else {}
    result = data_value(TASK, train_file, eval_file, curated, out / "data_value", seed=seed, **llm)
    print(result["verdict"])
    return data_value_headline(result, out / "data_value")


# ---- the whole loop -----------------------------------------------------------------------------
def run_demo(args: argparse.Namespace) -> int:
    """The eleven stages in order with `args` from demo.py's parser; prints the summary table at the end."""
    source = args.source or (str(DEFAULT_SOURCE_DIR) if DEFAULT_SOURCE_DIR.is_dir() else str(SAMPLES))
    if not Path(source).exists():
        fail(f"--source {source}: no such file or folder")
    ablate = args.ablation if args.ablation is not None else demo_sizes(
        args.model, on_samples=False, full=args.full) == SIZES["full"]
    on_samples = Path(source).resolve() == SAMPLES.resolve()
    train_n, eval_n = demo_sizes(args.model, on_samples=on_samples, full=args.full)
    train_n, eval_n = args.train_per_lang or train_n, args.eval_per_lang or eval_n
    n_synth = args.n_synthetic or (500 if args.full else 40)
    if n_synth <= 0:
        fail(f"--n-synthetic must be positive (got {args.n_synthetic})")

    out = Path(args.out)
    if args.fresh and out.exists():
        print(f"--fresh: deleting {out}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stages = Stages(out, total=11 if ablate else 7)
    train_file, eval_file = out / "data" / "train.jsonl", out / "data" / "eval.jsonl"
    db, curated = out / "synthetic" / "review.db", out / "curated.jsonl"
    train_opts: dict[str, Any] = {"epochs": args.epochs, "learning_rate": args.learning_rate,
                                  "max_steps": args.max_steps}
    if args.backend == "vllm":  # vLLM serves LoRA weights only: no module trained in full (e.g. tiny's embeddings)
        train_opts["modules_to_save"] = []
    model, backend, seed = args.model, args.backend, args.seed

    data = stages.run("data", "data", {"source": str(Path(source).resolve()), "train": train_n, "eval": eval_n, "seed": seed},
                      lambda: stage_data(out, source, train_n, eval_n, seed))
    gen = stages.run("generate", "generate + validate + queue", {"n": n_synth, "model": model, "backend": backend, "seed": seed},
                     lambda: stage_generate(out, str(train_file), str(eval_file), n_synth, model, backend, seed))
    if args.human_review:
        try:
            review = stages.run("review", "review by people in the app", {"human": True},
                                lambda: stage_human_review(db))
        except WaitingForReview as waiting:
            print(f"{waiting}. Review them, then re-run this command to continue:\n"
                  f"  streamlit run review_app/app.py -- --db {db}\n  python demo.py --human-review"
                  + ("" if args.out == "runs/demo" else f" --out {args.out}"))
            return 0
    else:
        review = stages.run("review", "review (DEMO ONLY: unattended, reviewer 'auto')", {"human": False},
                            lambda: stage_review(db))
    export = stages.run("export", "export curated", {}, lambda: stage_export(db, curated))
    trained = stages.run("train", "train on real + curated", train_settings(model, seed, train_opts),
                         lambda: stage_train([train_file, curated], out / "adapter", model, seed, train_opts))
    evaluated = stages.run("evaluate", "evaluate base vs tuned", {"backend": backend, "baseline": "cheap"},
                           lambda: stage_evaluate(eval_file, out / "adapter", out / "eval", model, backend, seed,
                                                  [train_file, curated]))
    ablation = None
    if ablate:
        real_only = stages.run("ablation_train", "ablation: train on real only", train_settings(model, seed, train_opts),
                               lambda: stage_train([train_file], out / "ablation" / "adapter", model, seed, train_opts))
        abl_eval = stages.run("ablation_evaluate", "ablation: evaluate real only",
                              {"backend": backend, "baseline": "cheap"},
                              lambda: stage_evaluate(eval_file, out / "ablation" / "adapter", out / "ablation" / "eval",
                                                     model, backend, seed, [train_file], compare_base=False))
        # The noise floor: the same real-only training with another seed. A data effect smaller than
        # this seed-to-seed difference is not evidence of anything.
        control = stages.run("ablation_seed_train", f"ablation control: real only, seed {seed + 1}",
                             train_settings(model, seed + 1, train_opts),
                             lambda: stage_train([train_file], out / "ablation" / "adapter_seed2", model, seed + 1,
                                                 train_opts))
        control_eval = stages.run("ablation_seed_evaluate", f"ablation control: evaluate seed {seed + 1}",
                                  {"backend": backend, "baseline": "cheap"},
                                  lambda: stage_evaluate(eval_file, out / "ablation" / "adapter_seed2",
                                                         out / "ablation" / "eval_seed2", model, backend, seed,
                                                         [train_file], compare_base=False))
        ablation = {"real_only": {"train": real_only, "eval": abl_eval},
                    "comparison": compare_predictions(out / "ablation" / "eval" / "predictions.jsonl",
                                                   out / "eval" / "predictions.jsonl", seed),
                    "seed_control": {"train": control, "eval": control_eval,
                                     "comparison": compare_predictions(
                                         out / "ablation" / "eval" / "predictions.jsonl",
                                         out / "ablation" / "eval_seed2" / "predictions.jsonl", seed,
                                         delta_is=f"accuracy(real only, seed {seed + 1}) - accuracy(real only, seed {seed})")}}

    valued = stages.run("data_value", "data value of the curated set", {"ablation": ablate},
                        lambda: stage_data_value(train_file, eval_file, curated, out, seed, ablate))

    summary = {
        "task": TASK, "model": model, "backend": backend, "seed": seed, "full": args.full,
        "tiny_model": is_tiny(model), "source": source, "out": str(out),
        "data": data, "synthetic": gen, "review": review, "export": export, "train": trained,
        "eval": evaluated, "ablation": ablation, "data_value": valued, "stages": stages.timings,
        "seconds_this_run": round(time.perf_counter() - started, 1),
        "review_app": f"streamlit run review_app/app.py -- --db {db}",
        "artifacts": {
            "train": str(train_file), "eval": str(eval_file), "eda_report": data["files"].get("report"),
            "synthetic": gen["files"]["samples"], "accepted": gen["files"]["accepted"],
            "rejected": gen["files"]["rejected"], "review_db": str(db), "curated": str(curated),
            "adapter": trained["adapter"], "eval_report": evaluated["report"], "metrics": evaluated["metrics"],
            "ablation_adapter": ablation and ablation["real_only"]["train"]["adapter"],
            "ablation_metrics": ablation and ablation["real_only"]["eval"]["metrics"],
            "data_value": valued["report"], "accepted_data_value": gen["files"].get("data_value"),
        },
    }
    write_json_atomic(out / "summary.json", summary)
    print_summary(summary, auto_reviewer=AUTO)
    return 0

