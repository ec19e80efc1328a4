"""One-shot contract: train a LoRA adapter on support tickets and predict intent + reply for each val row.

    python run.py --train train.jsonl --val val.jsonl --weights DIR --output results.json [--base-model tiny]

train.jsonl rows: {"id", "ticket", "intent", "ideal_reply"}; val.jsonl rows: {"id", "ticket"}.
Writes the adapter (standard PEFT files) to DIR and results.json:
    {"training": {"steps", "train_loss", "val_loss", "wall_clock_s", ...},
     "predictions": [{"id", "prediction", "predicted_intent", "latency_ms", "tokens_used"}, ...]}
The intent taxonomy is the set of intents in the training rows; decoding is constrained to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from core.errors import UserError, fail, run_cli
from core.io import iter_jsonl, write_json_atomic
from core.records import Record
from core.tasks import Task, load_task

TASK = "support_intent"
DEFAULT_BASE_MODEL = "unsloth/Llama-3.2-3B-Instruct"
TRAIN_FIELDS = ("id", "ticket", "intent", "ideal_reply")
VAL_FIELDS = ("id", "ticket")
LABEL_FIELDS = ("intent", "ideal_reply", "reply", "label")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def read_rows(path: Path, required: tuple[str, ...], kind: str) -> list[dict[str, Any]]:
    """Rows of a contract file; missing fields, non-string values and duplicate ids are errors."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        for field in required:
            if field not in row:
                fail(f"{path}:{lineno}: missing field '{field}'")
            if not isinstance(row[field], str) or not row[field].strip():
                fail(f"{path}:{lineno}: field '{field}' must be a non-empty string")
        if row["id"] in seen:
            fail(f"{path}:{lineno}: duplicate id '{row['id']}' (first on line {seen[row['id']]})")
        seen[row["id"]] = lineno
        rows.append(row)
    if not rows:
        fail(f"{path}: empty file: the {kind} set needs at least one row")
    return rows


def taxonomy_task(train_rows: list[dict[str, Any]], path: Path) -> Task:
    """The support task with its intents replaced by those in the training rows (first-seen order).

    Spellings that match a built-in intent or synonym are mapped to it; new intents are kept as-is.
    """
    base = load_task(TASK)
    intents: list[str] = []
    for row in train_rows:
        intent = base.normalise_label(row["intent"]) or row["intent"].strip()
        row["intent"] = intent
        if intent not in intents:
            intents.append(intent)
    if len(intents) == 1:
        warn(f"{path}: every training row has intent '{intents[0]}'; it will be predicted for every val row")
    return base.with_labels(intents)


def to_records(rows: list[dict[str, Any]], task: Task) -> list[Record]:
    return [
        Record.new(task=task.name, lang="en", text=row["ticket"], source="real", split="train",
                   labels={task.label_name: row["intent"], "reply": row["ideal_reply"]},
                   provenance={"dataset": "run.py", "row_id": row["id"]})
        for row in train_rows_dedup(rows)
    ]


def train_rows_dedup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    unique = []
    for row in rows:
        key = " ".join(row["ticket"].split()).casefold()
        if key in seen:
            warn(f"training ticket '{row['id']}' repeats an earlier ticket; the copy is dropped")
            continue
        seen.add(key)
        unique.append(row)
    return unique


def augment(records: list[Record], task: Task, *, seed: int, max_cost_usd: float) -> tuple[list[Record], dict]:
    """Paraphrase the training tickets through an OpenAI-compatible API, when one is configured.

    Paraphrases keep their source row's intent and ideal reply, pass the task's validators (schema,
    quality, near-duplicates against the real rows), and cost at most `max_cost_usd`. Any API error
    (an HTTP 402 included) means no augmentation, never a failed run.
    """
    if not (os.environ.get("OPENAI_API_KEY") and os.environ.get("OPENAI_BASE_URL")):
        return records, {"used": False, "reason": "OPENAI_API_KEY and OPENAI_BASE_URL not both set"}
    import random

    from generator.backends import Sampling, get_backend
    from validators.chain import run_chain

    rng = random.Random(seed)
    model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    try:
        backend = get_backend("openai", model=model, max_cost_usd=max_cost_usd)
        tones = task.attributes.get("tone", {}).get("*", ["polite"])
        plans = [(rec, rng.choice(tones)) for rec in records]
        prompts = [
            task.render_generation("paraphrase", lang="en", label=rec.labels[task.label_name],
                                   seeds=[{"text": rec.text, "label": rec.labels[task.label_name]}],
                                   attributes={"tone": tone, "plan": "Team"})
            for rec, tone in plans
        ]
        completions = backend.generate(prompts, task.generation_schema(), Sampling(temperature=0.9, seed=seed,
                                                                                   max_new_tokens=400))
    except Exception as exc:  # the contract: degrade to no augmentation, never crash
        return records, {"used": False, "reason": f"API error: {type(exc).__name__}: {str(exc)[:200]}"}
    paraphrases = [
        Record.new(task=task.name, lang="en", text=c.parsed[task.input_name], source="synthetic", split="train",
                   labels=dict(rec.labels), provenance={"paraphrase_of": rec.id, "tone": tone, "model": model})
        for (rec, tone), c in zip(plans, completions, strict=True) if c.ok and c.parsed
    ]
    accepted, _, _ = run_chain(task, paraphrases, references=records, seed=seed, progress=False,
                               skip=("self_consistency",))
    info = {"used": bool(accepted), "model": model, "requested": len(prompts), "parsed": len(paraphrases),
            "accepted": len(accepted), "cost_usd": round(getattr(backend, "cost_usd", 0.0), 4),
            "errors": sorted({c.error for c in completions if c.error})[:3]}
    return records + accepted, info


def train_adapter(records: list[Record], task: Task, *, base_model: str, out: Path, seed: int, deadline: float,
                  n_predict: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """LoRA SFT through the trainer, stopping early enough to leave time to predict `n_predict` rows."""
    from trainer.config import TrainConfig
    from trainer.sft import train

    known = set(TrainConfig.field_names())
    unknown = sorted(set(overrides) - known)
    if unknown:
        fail(f"--config: unknown setting '{unknown[0]}' (known: {', '.join(sorted(known))})")
    # Time prediction needs: model load, then about 1.5 s a row on a GPU for a 3B model (far more on a
    # CPU); the tiny model loads and predicts in seconds.
    if base_model == "tiny":
        reserve = 10.0 + 0.5 * n_predict
    else:
        reserve = 60.0 + n_predict * (1.5 if _on_gpu() else 8.0)
    budget = max(deadline - time.monotonic() - reserve, 10.0)
    cfg = TrainConfig(task=task.name, model=base_model, out=str(out), seed=seed, time_budget_s=budget,
                      val_fraction=0.15, **{**RUN_DEFAULTS.get(_size(base_model), {}), **overrides})
    summary = train(cfg, records, task=task)
    keys = ("steps", "train_loss", "val_loss", "wall_clock_s", "tokens_per_s", "peak_memory_mb", "trainable_params",
            "total_params", "stopped_early", "time_budget_s", "method", "model")
    return {k: summary.get(k) for k in keys}


# Support tickets are few (about 30) and long: more epochs than the sentiment defaults, and a max length
# that fits system prompt + ticket + JSON reply.
RUN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 8.0, "max_length": 768, "batch_size": 4},
    "real": {"epochs": 4.0, "max_length": 1024, "batch_size": 4, "grad_accum": 1, "learning_rate": 2e-4},
}


def _size(base_model: str) -> str:
    return "tiny" if base_model == "tiny" else "real"


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def predict(base_model: str, adapter: Path, task: Task, val_rows: list[dict[str, Any]], *, seed: int,
            batch_size: int = 8) -> list[dict[str, Any]]:
    """Constrained JSON decoding (intent from the taxonomy, bounded reply) for every val row, in order.

    A row whose JSON does not close within the token budget falls back to choice scoring for the
    intent, so `predicted_intent` is always in the taxonomy.
    """
    from tqdm import tqdm

    from evaluator.prompts import score_choices
    from generator.backends import Sampling
    from generator.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(base_model, adapter=adapter, batch_size=batch_size)
    reply_tokens = 96 if base_model == "tiny" else 220
    sampling = Sampling(temperature=0.0, max_new_tokens=reply_tokens + 40, seed=seed)
    schema = task.output_schema()
    choices = score_choices(task)
    predictions: list[dict[str, Any]] = []
    for start in tqdm(range(0, len(val_rows), batch_size), desc="predict", unit="batch", file=sys.stderr):
        rows = val_rows[start : start + batch_size]
        prompts = [task.classify_messages(row["ticket"], "en", variant=0) for row in rows]
        began = time.perf_counter()
        completions = backend.generate(prompts, schema, sampling)
        missing = [i for i, c in enumerate(completions) if not (c.ok and c.parsed)]
        fallback = backend.score([prompts[i] for i in missing], choices) if missing else []
        per_row_ms = (time.perf_counter() - began) * 1000 / len(rows)
        for i, (row, completion) in enumerate(zip(rows, completions, strict=True)):
            if completion.ok and completion.parsed:
                intent, reply = completion.parsed[task.label_name], completion.parsed["reply"]
            else:
                scores = fallback[missing.index(i)]
                intent = task.label_names[max(range(len(scores)), key=scores.__getitem__)]
                reply = _reply_from_partial(completion.text)
            predictions.append({
                "id": row["id"], "prediction": reply.strip(), "predicted_intent": intent,
                "latency_ms": round(per_row_ms, 1),
                "tokens_used": completion.prompt_tokens + completion.completion_tokens,
            })
    return predictions


def _reply_from_partial(text: str) -> str:
    """The reply of JSON cut off by the token budget (what was written of it), else a safe default."""
    marker = text.find('"reply"')
    if marker >= 0:
        value = text[marker + len('"reply"'):].lstrip(' :"')
        return value.split('"}')[0].rstrip('"') or FALLBACK_REPLY
    return FALLBACK_REPLY


FALLBACK_REPLY = "Thanks for reaching out to Northstar support. We are looking into your request and will follow up shortly."


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the JSON config ({exc})") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="training rows: id, ticket, intent, ideal_reply")
    parser.add_argument("--val", type=Path, required=True, help="rows to predict: id, ticket")
    parser.add_argument("--weights", type=Path, required=True, help="folder for the LoRA adapter")
    parser.add_argument("--output", type=Path, required=True, help="results.json to write")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL,
                        help=f"Hub id, local folder or 'tiny' (offline CPU model); default {DEFAULT_BASE_MODEL}")
    parser.add_argument("--seed", type=int, default=0, help="seed for training, sampling and splits (default 0)")
    parser.add_argument("--time-budget-s", type=float, default=1500.0,
                        help="wall-clock budget for the whole call; training stops early to leave time to predict")
    parser.add_argument("--config", type=Path, help="JSON file overriding training settings (TrainConfig fields)")
    parser.add_argument("--max-cost-usd", type=float, default=3.0,
                        help="hard spend cap for optional API augmentation (default 3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    train_rows = read_rows(args.train, TRAIN_FIELDS, "training")
    val_rows = read_rows(args.val, VAL_FIELDS, "validation")
    leaked = sorted({f for row in val_rows for f in LABEL_FIELDS if f in row})
    if leaked:
        warn(f"{args.val}: val rows carry {', '.join(leaked)}; ignored (predictions never read them)")
    task = taxonomy_task(train_rows, args.train)
    records = to_records(train_rows, task)
    counts = Counter(r.labels[task.label_name] for r in records)
    print(f"[run] {len(records)} training tickets, {len(task.label_names)} intents, {len(val_rows)} to predict",
          file=sys.stderr)
    overrides = load_config(args.config)

    records, augmentation = augment(records, task, seed=args.seed, max_cost_usd=args.max_cost_usd)
    training = train_adapter(
        records, task, base_model=args.base_model, out=args.weights, seed=args.seed,
        deadline=started + args.time_budget_s, n_predict=len(val_rows), overrides=overrides,
    )
    training["augmentation"] = augmentation
    training["intent_counts"] = dict(counts)
    predictions = predict(args.base_model, args.weights, task, val_rows, seed=args.seed)
    training["total_wall_clock_s"] = round(time.monotonic() - started, 2)
    write_json_atomic(args.output, {"training": training, "predictions": predictions})
    print(f"[run] wrote {args.output} ({len(predictions)} predictions) and the adapter in {args.weights}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_cli(main)
