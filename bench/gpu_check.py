"""`make gpu-check` = `python -m bench.gpu_check`: every offline model on one GPU in bf16, checked against fp32 on the CPU.

    python -m bench.gpu_check                       # CUDA: each model of backends.models.TINY_MODELS, < 8 minutes
    python -m bench.gpu_check --device cpu --small  # the same checks on the CPU, small (tests/bench: make test)
    python -m bench.gpu_check --json out.json       # also every number as JSON

For each model: (1) LoRA training for a few steps through the trainer (bf16 autocast on CUDA, fp32 on the
CPU, as trainer/sft.py trains), its peak memory beside trainer/plan.py's estimate; (2) Outlines-constrained
decoding of an intent in bf16 (every output must parse); (3) choice scoring of run.py's intents in bf16,
compared with fp32 on the CPU: every log-probability within SCORE_TOLERANCE, and the same best intent
wherever fp32's margin is wider than twice that; (4) `run.py` on one data/heldout set on the device
(every val row predicted, intents spelled as in training). Prints peak memory and tokens/s of each stage;
exit code 1 on any mismatch, 2 when asked for CUDA and there is none.
Results from a real GPU: docs/training.md#gpu-check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from backends import Sampling
from backends.models import TINY_MODELS, load_model
from backends.transformers_backend import TransformersBackend
from core.errors import run_cli
from core.records import Record
from oneshot.adapter import score_intents
from oneshot.contract import read_train, read_val
from oneshot.prompts import ticket_messages
from trainer.config import TrainConfig
from trainer.memory import TensorPeak
from trainer.plan import estimate

REPO = Path(__file__).resolve().parent.parent
HELDOUT = REPO / "data" / "heldout" / "fitloop"
# bf16 keeps 8 bits of mantissa: a log-probability of about -10 nats is off by a few hundredths per token,
# and a choice sums several tokens. Measured bf16 vs fp32 on the CPU for the tiny models: 0.006 to 0.02 nats
# per choice (docs/training.md#gpu-check); the bound leaves room for CUDA's kernels and deeper models.
SCORE_TOLERANCE = 0.1  # nats, per choice


def log(message: str) -> None:
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


def _prompts(n: int) -> tuple[list[Any], list[str]]:
    rows = read_train(HELDOUT / "train.jsonl")
    intents = list(dict.fromkeys(r.intent for r in rows))
    tickets = [r.ticket for r in read_val(HELDOUT / "val.jsonl")][:n]
    return [ticket_messages(t, rows[:1], intents) for t in tickets], intents


def check_training(model: str, device: str, steps: int, batch: int, length: int, out: Path) -> dict[str, Any]:
    """A few LoRA steps through trainer.sft on `device`: loss, tokens/s, peak memory beside the plan's."""
    from core.tasks import load_task
    from trainer.sft import train

    task = load_task("support_intent").with_labels(_prompts(1)[1])
    records = [Record.new(task=task.name, lang="en", text=r.ticket, source="real", split="train",
                          labels={"intent": r.intent, "reply": r.reply}, provenance={"row_id": r.id})
               for r in read_train(HELDOUT / "train.jsonl")]
    cfg = TrainConfig(task=task.name, model=model, out=str(out), device=device, max_steps=steps,
                      batch_size=batch, grad_accum=1, max_length=length, val_fraction=0.0, logging_steps=1,
                      memory_plan=False, gradient_checkpointing=False)
    _reset_peak(device)
    summary = train(cfg, records=records, task=task)
    planned = estimate(cfg.resolved(), device, checkpointing=False).peak / 2**20
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    return {"steps": summary["steps"], "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None, "tokens_per_s": summary["tokens_per_s"],
            "peak_memory_mb": summary["peak_memory_mb"], "plan_peak_mb": round(planned, 1),
            # trainer.report: torch's CUDA peak on a GPU; on the CPU the process's whole peak RSS
            "peak_kind": "" if device.startswith("cuda") else " RSS of the process",
            "ok": summary["steps"] == steps and all(math.isfinite(x) for x in losses)}


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def check_decoding(backend: TransformersBackend, device: str, prompts: list[Any], intents: list[str],
                   max_new_tokens: int) -> dict[str, Any]:
    """Outlines-constrained greedy decoding of {"intent": one of the intents}: every row must parse."""
    from pydantic import create_model

    schema = create_model("IntentOnly", intent=(Literal[tuple(intents)], ...))  # type: ignore[valid-type]
    backend.logits_processor(schema)  # compile the index outside the timing
    start = time.perf_counter()
    with TensorPeak(device) as peak:
        done = backend.generate(prompts, schema, Sampling(temperature=0.0, max_new_tokens=max_new_tokens))
    wall = time.perf_counter() - start
    tokens = sum(c.completion_tokens for c in done)
    parsed = [c.parsed["intent"] if c.parsed else None for c in done]
    return {"rows": len(done), "parsed": sum(p in intents for p in parsed), "intents": parsed,
            "errors": sorted({c.error for c in done if c.error}),
            "tokens_per_s": round(tokens / max(wall, 1e-9), 1), "peak_memory_mb": round(peak.bytes / 2**20, 1),
            "ok": all(p in intents for p in parsed)}


def check_scoring(backend: TransformersBackend, reference: TransformersBackend, device: str,
                  prompts: list[Any], intents: list[str], tolerance: float) -> dict[str, Any]:
    """run.py's intent scores in bf16 on `device` against fp32 on the CPU."""
    import numpy as np

    start = time.perf_counter()
    with TensorPeak(device) as peak:
        scores, tokens = score_intents(backend, prompts, intents)
    wall = time.perf_counter() - start
    ref, _ = score_intents(reference, prompts, intents)
    diff = float(np.abs(scores - ref).max())
    order = np.sort(ref, axis=1)
    margin = order[:, -1] - order[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
    clear = margin > 2 * tolerance  # where fp32 itself is not close to a tie, the best intent must agree
    same_best = bool((scores.argmax(1) == ref.argmax(1))[clear].all())
    return {"rows": len(prompts), "choices": len(intents), "max_abs_diff": round(diff, 4),
            "tolerance": tolerance, "best_agrees_where_clear": same_best, "clear_rows": int(clear.sum()),
            "tokens_per_s": round(sum(tokens) / max(wall, 1e-9), 1),
            "peak_memory_mb": round(peak.bytes / 2**20, 1), "ok": diff <= tolerance and same_best}


def check_run_py(model: str, device: str, work: Path, small: bool, budget_s: float) -> dict[str, Any]:
    """`python run.py` on one held-out set on `device`: complete results, intents as spelled in training."""
    data = HELDOUT
    if small:  # 8 training rows, 4 to predict: the path, not the accuracy
        data = work / "heldout"
        data.mkdir(parents=True, exist_ok=True)
        for name, n in (("train.jsonl", 8), ("val.jsonl", 4)):
            lines = (HELDOUT / name).read_text(encoding="utf-8").splitlines()[:n]
            (data / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = work / "results.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("OPENAI_API_KEY", None)
    if not device.startswith("cuda"):
        env["CUDA_VISIBLE_DEVICES"] = ""  # run.py picks CUDA whenever it sees one
    cmd = [sys.executable, "run.py", "--train", str(data / "train.jsonl"), "--val", str(data / "val.jsonl"),
           "--weights", str(work / "w"), "--output", str(out), "--base-model", model, "--folds", "0",
           "--time-budget-s", str(budget_s)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():
        return {"ok": False, "returncode": proc.returncode, "stderr": proc.stderr[-1500:]}
    results = json.loads(out.read_text())
    val_ids = [r.id for r in read_val(data / "val.jsonl")]
    taxonomy = {r.intent for r in read_train(data / "train.jsonl")}
    preds = results["predictions"]
    training = results["training"]
    complete = [p["id"] for p in preds] == val_ids and all(p["predicted_intent"] in taxonomy for p in preds)
    return {"wall_s": round(wall, 1), "predictions": len(preds), "complete": complete,
            "training_ok": bool(training.get("ok")), "steps": training.get("steps"),
            "tokens_per_s": training.get("tokens_per_s"), "peak_memory_mb": training.get("peak_memory_mb"),
            "ok": complete and bool(training.get("ok"))}


def check_model(model: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    dtype = torch.bfloat16
    prompts, intents = _prompts(args.rows)
    result: dict[str, Any] = {"model": model}
    started = time.perf_counter()
    result["training"] = _stage(check_training, model, args.device, args.steps, args.batch, args.length,
                                work / "adapter")
    try:
        backend = TransformersBackend(model, loaded=load_model(model, device=args.device, dtype=dtype),
                                      batch_size=args.rows)
        reference = TransformersBackend(model, loaded=load_model(model, device="cpu", dtype=torch.float32),
                                        batch_size=args.rows)
    except Exception as exc:  # a model that does not load is a failed check, not a crash of the others
        result["decoding"] = result["scoring"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    else:
        result["decoding"] = _stage(check_decoding, backend, args.device, prompts, intents, args.new_tokens)
        result["scoring"] = _stage(check_scoring, backend, reference, args.device, prompts, intents, args.tolerance)
        del backend, reference
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    if model in args.run_py:
        result["run_py"] = _stage(check_run_py, model, args.device, work / "run", args.small, args.run_budget_s)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["ok"] = all(v["ok"] for v in result.values() if isinstance(v, dict))
    return result


def _stage(check: Any, *args: Any) -> dict[str, Any]:
    """One check; an exception inside it is that check's failure (the others still run)."""
    try:
        return check(*args)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:600]}"}


def row_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"{result['model']}: {'ok' if result['ok'] else 'MISMATCH'} ({result['wall_s']} s)"]
    for name in ("training", "decoding", "scoring", "run_py"):
        if name in result and "error" in result[name]:
            lines.append(f"  {name:<9} FAILED: {result[name]['error']}")
    if len(lines) > 1:
        return lines
    return _ok_lines(result)


def _ok_lines(result: dict[str, Any]) -> list[str]:
    t, d, s = result["training"], result["decoding"], result["scoring"]
    lines = [
        f"{result['model']}: {'ok' if result['ok'] else 'MISMATCH'} ({result['wall_s']} s)",
        f"  training  {t['steps']} steps, loss {t['loss_first']:.3f} -> {t['loss_last']:.3f}, "
        f"{t['tokens_per_s']:,.0f} tokens/s, peak {t['peak_memory_mb']:,.1f} MB{t['peak_kind']} "
        f"(plan {t['plan_peak_mb']:,.1f} MB)"
        if t["loss_first"] is not None else f"  training  {t}",
        f"  decoding  {d['parsed']}/{d['rows']} parse, {d['tokens_per_s']:,.1f} tokens/s, peak {d['peak_memory_mb']:,.1f} MB"
        + (f"; errors: {d['errors'][:2]}" if d["errors"] else ""),
        f"  scoring   max |bf16 - fp32| {s['max_abs_diff']} (tolerance {s['tolerance']}), best intent agrees on "
        f"{s['clear_rows']} clear rows: {s['best_agrees_where_clear']}, {s['tokens_per_s']:,.0f} prompt tokens/s, "
        f"peak {s['peak_memory_mb']:,.1f} MB",
    ]
    if "run_py" in result:
        r = result["run_py"]
        lines.append(f"  run.py    {'complete' if r.get('complete') else 'INCOMPLETE'}: {r.get('predictions')} "
                     f"predictions, training ok {r.get('training_ok')}, {r.get('tokens_per_s')} tokens/s, peak "
                     f"{r.get('peak_memory_mb')} MB, {r.get('wall_s')} s" if r.get("returncode") is None
                     else f"  run.py    FAILED (exit {r['returncode']}): {r['stderr'][-600:]}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default; the point of the check) or cpu")
    p.add_argument("--small", action="store_true", help="small sizes (the make test run on the CPU)")
    p.add_argument("--models", nargs="+", default=list(TINY_MODELS), help="default: every offline model")
    p.add_argument("--tolerance", type=float, default=SCORE_TOLERANCE, help="nats per choice, bf16 vs fp32")
    p.add_argument("--json", type=Path, help="also write every number to this JSON file")
    args = p.parse_args(argv)
    big = not args.small
    # The support-ticket prompts are 330-430 tokens with the tiny models' tokenizers: all of them fit.
    args.steps, args.batch, args.length = (8, 4, 512) if big else (2, 1, 448)
    args.rows, args.new_tokens = (16, 48) if big else (2, 40)
    args.run_py = list(args.models) if big else args.models[:1]
    args.run_budget_s = 240.0 if big else 120.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device here; `python -m bench.gpu_check --device cpu --small` runs the same "
              "checks on the CPU", file=sys.stderr)
        return 2
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    log(f"{card}, torch {torch.__version__}, models: {', '.join(args.models)}")
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for model in args.models:
            log(f"{model} ...")
            result = check_model(model, args, Path(tmp) / model)
            results.append(result)
            print("\n".join(row_lines(result)), flush=True)
    wall = time.perf_counter() - started
    ok = all(r["ok"] for r in results)
    print(f"{'all ok' if ok else 'MISMATCH'}: {len(results)} models on {card} in {wall:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"device": card, "torch": torch.__version__, "wall_s": round(wall, 1),
                                         "ok": ok, "results": results}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    run_cli(main)
