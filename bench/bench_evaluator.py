"""Evaluator: choice scoring (one forward pass, no parsing) vs free generation + the strict parser.

Same items (the fin_sentiment samples, en + vi), same batch size, measured side by side, for two
models: the base tiny model, which like an untuned model does not stop after the label and writes
up to the generation budget (24 tokens), and the tiny model with a short trainer LoRA adapter that has
learned to answer "<label><|eot_id|>", so free generation stops after two tokens. The note gives
the share of items where both modes give the same label. One CPU thread, for stable timings on a
shared machine (the ratio is what counts); on a GPU machine it runs on the GPU.
"""

from __future__ import annotations

import tempfile
import time

from backends.models import REPO_ROOT, default_device, load_model
from backends.transformers_backend import TransformersBackend
from bench import BenchRow, ratio
from core.io import read_jsonl
from core.records import Record
from core.tasks import load_task
from evaluator.inference import predict
from evaluator.prompts import tuned_prompts
from trainer.config import TrainConfig

BATCH = 16
# Targets (issue 17): scoring at least 5x free generation on a base model, whose free answers run to the
# budget, and no slower than it on a tuned one, whose answers are a few tokens.
BASE_TARGET, TUNED_TARGET = 5.0, 1.0


def _records(task) -> list[Record]:
    out = []
    for lang in ("en", "vi"):
        for row in read_jsonl(REPO_ROOT / "data" / "samples" / "fin_sentiment" / f"{lang}.jsonl"):
            label = task.normalise_label(row["label"])
            if label:
                out.append(Record.new(task=task.name, lang=lang, text=row["text"], labels={"label": label}))
    return out


def run() -> list[BenchRow]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = load_task("fin_sentiment")
        records = _records(task)
        prompts = tuned_prompts(task, records)
        device = default_device()
        base, tokenizer = load_model("tiny", device=device)
        rows = [_compare("base", TransformersBackend("tiny", loaded=(base, tokenizer), batch_size=BATCH), task, prompts)]
        tuned = tuned_model("tiny", base, task, records, device)
        backend = TransformersBackend("tiny", loaded=(tuned, tokenizer), batch_size=BATCH)
        rows.append(_compare("tuned", backend, task, prompts, target=TUNED_TARGET))
    finally:
        torch.set_num_threads(threads)
    return rows


def tuned_model(name: str, base, task, records: list[Record], device: str, steps: int = 60, batch: int = 8):
    """`base` under a short trainer LoRA run on `records`: it learns to answer "<label><|eot_id|>",
    so free generation stops after two tokens."""
    from peft import PeftModel

    from trainer.sft import train

    with tempfile.TemporaryDirectory() as tmp:
        adapter = f"{tmp}/adapter"
        train(TrainConfig(task=task.name, model=name, out=adapter, max_steps=steps, batch_size=batch,
                          learning_rate=5e-3, val_fraction=0.0, device=device), records=records, task=task)
        return PeftModel.from_pretrained(base, str(adapter)).eval()


def _compare(name: str, backend: TransformersBackend, task, prompts, target: float = BASE_TARGET) -> BenchRow:
    predict(backend, task, prompts[:BATCH], mode="score")  # warm-up: first-call allocations

    _sync()
    start = time.perf_counter()
    scored = predict(backend, task, prompts, mode="score", batch_size=BATCH)
    _sync()
    score_rate = len(prompts) / (time.perf_counter() - start)
    start = time.perf_counter()
    free = predict(backend, task, prompts, mode="free", batch_size=BATCH)
    _sync()
    free_rate = len(prompts) / (time.perf_counter() - start)

    same = sum(a.label == b.label for a, b in zip(scored, free, strict=True)) / len(prompts)
    invalid = sum(p.label == "invalid" for p in free) / len(prompts)
    chars = sum(len(p.raw) for p in free) / len(free)
    where = "GPU" if str(backend.device).startswith("cuda") else "CPU, 1 thread"
    note = (f"{len(prompts)} items; same label {same:.0%}; free-text invalid {invalid:.0%}; "
            f"free answer {chars:.0f} chars on average; {where}")
    return BenchRow(f"evaluator.score_vs_free_generation.{name}", score_rate, free_rate,
                    ratio(score_rate, free_rate), target, "items/s", note)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
