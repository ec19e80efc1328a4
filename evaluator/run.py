"""Evaluate base vs tuned on held-out records: the Python API behind `python -m evaluator`.

    metrics = evaluate("fin_sentiment", "runs/fin/data/eval.jsonl", model="tiny",
                       adapter="runs/fin/adapter", out_dir="runs/fin/eval", mode="score")
    metrics["paired"]["mcnemar_p"], metrics["tuned"]["by_lang"]["en"]["accuracy"]

Both models answer the same items; the base model runs first, then the adapter is loaded on top
of the same weights, so the pair costs one model load: PEFT on the loaded model (transformers
backend), or one vLLM engine with LoRA enabled and a LoRARequest per tuned call (vllm backend).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from backends import get_backend
from backends.models import load_model
from backends.transformers_backend import TransformersBackend
from backends.vllm_backend import adapter_rank
from core.errors import fail
from core.inputs import ColumnMap, is_record_file, load_inputs
from core.io import iter_jsonl, read_records, write_json_atomic, write_jsonl_atomic
from core.records import Record
from core.task_spec import Task
from core.tasks import load_task
from evaluator.cheap_baseline import baseline_predictions, training_files
from evaluator.inference import Prediction, predict
from evaluator.metrics import N_BOOTSTRAP, majority_baseline, metrics_by_lang, paired_by_lang
from evaluator.prompts import Messages, base_prompts, tuned_prompts
from evaluator.report import write_report


def load_eval_records(path: str | Path, task: Task, role: str = "eval") -> list[Record]:
    """Records of `task`, each with a known label (errors name the file, line and field).

    `role` names the records in errors ("eval", "training", "synthetic", ...).
    """
    records = read_records(path)
    lines = [lineno for lineno, _ in iter_jsonl(path)]
    return check_records(records, task, where=[f"{path}:{n}" for n in lines], role=role)


def load_labelled(source: str | Path | list[Record], task: Task, role: str, *, columns: ColumnMap | None = None,
                  allow_empty: bool = False) -> list[Record]:
    """Labelled records of `task` from Record JSONL, a table (with `columns`) or a list, labels normalised.

    `allow_empty`: an empty file or list gives [] (a curated export with nothing approved) instead of an error.
    """
    if isinstance(source, list):
        return check_records(source, task, role=role) if source or not allow_empty else []
    path = Path(source)
    if allow_empty and path.is_file() and not path.read_text(encoding="utf-8-sig").strip():
        return []
    if columns is None and is_record_file(str(path)):
        return load_eval_records(path, task, role)
    return check_records(load_inputs([str(path)], task, columns), task, role=role)


def check_records(records: list[Record], task: Task, where: list[str] | None = None,
                  role: str = "eval") -> list[Record]:
    """Records with their gold label normalised to a task label; anything unusable is a UserError."""
    if not records:
        fail(f"no {role} records")
    out = []
    for i, record in enumerate(records):
        loc = where[i] if where else f"{role} record {i + 1} (id {record.id})"
        if record.task != task.name:
            fail(f"{loc}: field 'task': '{record.task}' is not the evaluated task '{task.name}'")
        raw = record.labels.get(task.label_name)
        if raw is None:
            fail(f"{loc}: field 'labels.{task.label_name}': missing ({role} records need a gold label)")
        gold = task.normalise_label(raw)
        if gold is None:
            fail(f"{loc}: field 'labels.{task.label_name}': unknown label '{raw}' "
                 f"(task labels: {', '.join(task.label_names)})")
        out.append(record if gold == raw else record.model_copy(
            update={"labels": {**record.labels, task.label_name: gold}}))
    return out


def evaluate(
    task: str | Task,
    eval_records: str | Path | list[Record],
    model: str = "tiny",
    adapter: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    mode: str = "score",
    backend: str = "transformers",
    compare_base: bool = True,
    shots: int = 0,
    shot_pool: str | Path | list[Record] | None = None,
    seed: int = 0,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
    device: str | None = None,
    loaded: tuple[Any, Any] | None = None,
    baseline: bool = True,
    baseline_train: str | Path | list[str | Path] | list[Record] | None = None,
) -> dict:
    """Predict with the base model and base + `adapter`, compute every metric, write the report.

    Args:
        eval_records: a `Record` JSONL path (held-out split) or the records themselves.
        adapter: a PEFT adapter folder; None evaluates the base model alone.
        compare_base: with an adapter, also run the base model and the paired statistics.
        shots: k-shot examples for the base model, drawn from `shot_pool` (the train split).
        loaded: an already loaded (model, tokenizer) for the transformers backend; the adapter is
            applied on top for the tuned pass and removed again afterwards.
        baseline: add the cheap baseline (`evaluator.cheap_baseline`) as a row beside the models.
        baseline_train: its training records (paths or records); default: the adapter's training files
            (training_summary.json), else `shot_pool`; with none the metrics say so (`baseline_note`).

    Returns:
        The dict written to `metrics.json` (see `docs/evaluation.md`).
    """
    task = load_task(task) if isinstance(task, str | Path) else task
    if isinstance(eval_records, str | Path):
        records = load_eval_records(eval_records, task)
    else:
        records = check_records(list(eval_records), task)
    pool = read_records(shot_pool) if isinstance(shot_pool, str | Path) else shot_pool
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        fail(f"{adapter}: not a PEFT adapter folder (no adapter_config.json)")
    run_base = adapter is None or compare_base

    prompts: dict[str, list[Messages]] = {}
    if run_base:
        prompts["base"] = base_prompts(task, records, shots=shots, pool=pool, seed=seed)
    if adapter is not None:
        prompts["tuned"] = tuned_prompts(task, records)

    options = {"mode": mode, "batch_size": batch_size, "max_new_tokens": max_new_tokens, "seed": seed}
    preds: dict[str, list[Prediction]] = {}
    rendered: dict[str, str] = {}
    speed: dict[str, float] = {}
    for name, backend_obj in _backends(backend, model, adapter, run_base, device, batch_size, loaded):
        start = time.perf_counter()
        preds[name] = predict(backend_obj, task, prompts[name], desc=name, **options)
        speed[name] = len(records) / max(time.perf_counter() - start, 1e-9)
        render = getattr(backend_obj, "render", None)
        rendered[name] = render(prompts[name][0]) if render else str(prompts[name][0])

    gold = [r.labels[task.label_name] for r in records]
    langs = [r.lang for r in records]
    metrics: dict[str, Any] = {
        "task": task.name, "model": model, "adapter": str(adapter) if adapter else None, "mode": mode,
        "backend": backend, "n": len(records), "seed": seed, "shots": shots, "labels": task.label_names,
    }
    for name, model_preds in preds.items():
        labels = [p.label for p in model_preds]
        metrics[name] = metrics_by_lang(gold, labels, langs, task.label_names, seed=seed, n_bootstrap=n_bootstrap)
        metrics[name]["items_per_s"] = speed[name]
        metrics[name]["rules"] = _count(p.rule for p in model_preds)
    metrics["majority_baseline"] = majority_baseline(gold, langs)
    if "base" in preds and "tuned" in preds:
        metrics["paired"] = paired_by_lang(gold, [p.label for p in preds["base"]], [p.label for p in preds["tuned"]],
                                           langs, seed=seed, n_bootstrap=n_bootstrap)
    baseline_preds = None
    sources, note = (_baseline_sources(baseline_train, adapter, shot_pool) if baseline
                     else ([], "skipped (--no-baseline)"))
    if sources:
        train = [r for source in sources for r in load_labelled(source, task, "training", allow_empty=True)]
        baseline_preds, info = baseline_predictions(task, train, records, seed=seed)
        metrics["baseline"] = {**metrics_by_lang(gold, baseline_preds, langs, task.label_names, seed=seed,
                                                 n_bootstrap=n_bootstrap),
                               "train_files": [s if isinstance(s, str) else str(s) for s in sources
                                               if isinstance(s, str | Path)], **info}
        compared = "tuned" if "tuned" in preds else "base"
        metrics["paired_baseline"] = {"model": compared, **paired_by_lang(
            gold, baseline_preds, [p.label for p in preds[compared]], langs, seed=seed, n_bootstrap=n_bootstrap)}
    else:
        metrics["baseline"] = None
        metrics["baseline_note"] = note
    metrics["prompts"] = {name: {"example_rendered": text, "example_messages": prompts[name][0]}
                          for name, text in rendered.items()}

    if out_dir is not None:
        out = Path(out_dir)
        write_json_atomic(out / "metrics.json", metrics)
        rows = prediction_rows(records, task, prompts, preds)
        if baseline_preds is not None:
            for row, label in zip(rows, baseline_preds, strict=True):
                row["baseline"] = {"label": label, "correct": label == row["gold"]}
        write_jsonl_atomic(out / "predictions.jsonl", rows)
        write_report(out, task, metrics, rows)
    return metrics


def _baseline_sources(
    explicit: str | Path | list | None, adapter: str | Path | None, shot_pool: str | Path | list[Record] | None,
) -> tuple[list, str]:
    """(the cheap baseline's training sources, why there are none): explicit, the adapter's, the shot pool."""
    if explicit is not None:
        if isinstance(explicit, str | Path):
            return [explicit], ""
        items = list(explicit)
        if items and isinstance(items[0], Record):
            return [items], ""  # one list of records
        return items, ""
    files = training_files(adapter)
    if files:
        return files, ""
    if shot_pool is not None:
        return [shot_pool if isinstance(shot_pool, str | Path) else list(shot_pool)], ""
    return [], ("no training file known: pass --baseline-train FILE (the adapter's training_summary.json names "
                "no training file, and no --shots-from was given)")


def prediction_rows(
    records: list[Record], task: Task, prompts: dict[str, list[Messages]], preds: dict[str, list[Prediction]],
) -> list[dict]:
    """One row per item: gold label, and for each model its exact prompt, raw output and parsed label."""
    rows = []
    for i, record in enumerate(records):
        row: dict[str, Any] = {"id": record.id, "lang": record.lang, "text": record.text,
                               "gold": record.labels[task.label_name]}
        for name, model_preds in preds.items():
            row[name] = {**model_preds[i].as_dict(), "correct": model_preds[i].label == row["gold"],
                         "prompt": prompts[name][i]}
        if len(preds) == 2:
            row["agree"] = preds["base"][i].label == preds["tuned"][i].label
        rows.append(row)
    return rows


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _backends(
    backend: str, model: str, adapter: str | Path | None, run_base: bool, device: str | None, batch_size: int,
    loaded: tuple[Any, Any] | None,
):
    """Yield ("base", backend) then ("tuned", backend), sharing one set of weights where possible."""
    if backend == "vllm":

        # One engine for both: LoRA enabled (sized for this adapter), base requests without a LoRARequest.
        lora = {} if adapter is None else {"enable_lora": True, "max_lora_rank": adapter_rank(adapter)}
        engine = get_backend("vllm", model=model, **lora)
        if run_base:
            yield "base", engine
        if adapter is not None:
            yield "tuned", engine.with_adapter(adapter)
        return
    if backend != "transformers":  # an API serves its own models: the base model only

        if adapter is not None:
            fail(f"--backend {backend} cannot apply a local adapter ({adapter}); use transformers or vllm")
        yield "base", get_backend(backend, model=model)
        return

    weights, tokenizer = loaded or load_model(model, device=device)
    if run_base:
        yield "base", TransformersBackend(model, loaded=(weights, tokenizer), batch_size=batch_size)
    if adapter is None:
        return
    from peft import PeftModel

    tuned = PeftModel.from_pretrained(weights, str(adapter))
    tuned.eval()
    try:
        yield "tuned", TransformersBackend(model, adapter=adapter, loaded=(tuned, tokenizer), batch_size=batch_size)
    finally:
        if loaded is not None:  # hand the caller's model back without the LoRA layers
            tuned.unload()
