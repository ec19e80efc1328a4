"""Trainer on the tiny model, side by side in one process:

- LoRA vs full fine-tuning: training tokens/s, and training-state memory (weights + gradients + AdamW
  moments actually allocated after the run);
- packing (BFD, padding-free) vs padding: tokens/s on short, variable-length samples (a short-prompt
  copy of fin_sentiment, texts cut to 2..48 words). Baseline: padding as the trainer runs it by
  default (`group_by_length` on: batches of similar length, little padding), the user's other choice.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

import yaml

from backends.models import REPO_ROOT
from bench import BenchRow, ratio
from core.records import Record
from core.tasks import TASKS_DIR, load_task
from trainer.config import TrainConfig

STEPS = 12


def _records(task: str, n: int, seed: int = 0, short: bool = False) -> list[Record]:
    rng = random.Random(seed)

    rows = [json.loads(line) for line in (REPO_ROOT / "data/samples/fin_sentiment/en.jsonl").read_text().splitlines()]
    words = " ".join(r["text"] for r in rows).split()
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        if short:  # long-tailed lengths: mostly short, some long, as real headlines and tweets are
            k = min(48, max(2, int(rng.expovariate(1 / 12))))
            start = rng.randrange(len(words) - k)
            text = f"{i} " + " ".join(words[start : start + k])
        else:
            text = f"{i} {row['text']}"
        out.append(Record.new(task=task, lang="en", text=text, labels={"label": row["label"]}))
    return out


def _short_task(folder: Path) -> Path:
    """fin_sentiment with a one-line prompt, so that the samples themselves are short."""
    spec = yaml.safe_load((TASKS_DIR / "fin_sentiment.yaml").read_text(encoding="utf-8"))
    spec["prompts"].update(system="Sentiment.", instructions=["Label:"], user="{{ input }}")
    path = folder / "fin_short.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def _pad_share(trainer) -> float:
    """The share of padding tokens in the batches the trainer's own dataloader builds."""
    real = total = 0
    for batch in trainer.get_train_dataloader():
        mask = batch.get("attention_mask")  # padding-free (packed) batches carry position_ids only
        n = batch["input_ids"].numel()
        real, total = real + (n if mask is None else int(mask.sum())), total + n
    return 1 - real / total if total else 0.0


def _measure(cfg: TrainConfig, records: list[Record]) -> tuple[float, float, float]:
    """(training tokens/s without padding, MB of weights + grads + optimizer state, padding share)
    over `STEPS` steps."""
    from trainer.sft import build_trainer

    cfg = cfg.resolved()
    trainer = build_trainer(cfg, load_task(cfg.task), records, [])
    trainer.args.disable_tqdm = True
    trainer.train()  # one untimed warm-up run of the same length
    trainer = build_trainer(cfg, load_task(cfg.task), records, [])
    trainer.args.disable_tqdm = True
    start = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - start
    model = trainer.model
    state = sum(p.numel() * p.element_size() for p in model.parameters())
    state += sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    for slot in trainer.optimizer.state.values():
        state += sum(t.numel() * t.element_size() for t in slot.values() if hasattr(t, "numel"))
    return trainer.state.num_input_tokens_seen / elapsed, state / 2**20, _pad_share(trainer)


def run() -> list[BenchRow]:
    with tempfile.TemporaryDirectory() as tmp:
        base = {"model": "tiny", "device": "cpu", "max_steps": STEPS, "val_fraction": 0.0, "logging_steps": 100,
                "out": tmp, "batch_size": 8, "max_length": 256}
        recs = _records("fin_sentiment", 8 * STEPS)
        # Plain LoRA (no modules_to_save), the 1B recipe, against full fine-tuning of the same model.
        lora_tps, lora_mb, _ = _measure(TrainConfig(task="fin_sentiment", modules_to_save=[], **base), recs)
        full_tps, full_mb, _ = _measure(TrainConfig(task="fin_sentiment", method="full", **base), recs)

        task = str(_short_task(Path(tmp)))
        short = _records("fin_sentiment", 16 * STEPS * 4, short=True)
        pad = {**base, "batch_size": 16, "max_length": 128, "task": task}
        pack = {**base, "batch_size": 4, "max_length": 128, "task": task}  # 4 rows x 128 ~ 16 short samples
        pad_tps, _, pad_share = _measure(TrainConfig(**pad), short)  # the default: group_by_length=True
        pack_tps, _, pack_share = _measure(TrainConfig(packing=True, **pack), short)
    return [
        BenchRow("trainer.lora_vs_full_tokens_per_s", lora_tps, full_tps, ratio(lora_tps, full_tps), None, "tokens/s",
                 "tiny model, LoRA r=16 on all linear layers vs every weight"),
        BenchRow("trainer.lora_vs_full_train_state_mb", lora_mb, full_mb, ratio(lora_mb, full_mb, False), None, "MB",
                 "weights + grads + AdamW moments allocated"),
        BenchRow("trainer.packing_vs_padding_tokens_per_s", pack_tps, pad_tps, ratio(pack_tps, pad_tps), 1.5,
                 "tokens/s", "baseline: padding with the trainer's default group_by_length=True (batches of "
                 "similar length); short variable-length samples; padding tokens per batch: "
                 f"{pad_share:.0%} grouped, {pack_share:.0%} packed: removing padding can gain at most "
                 f"{1 / (1 - pad_share) if pad_share < 1 else float('inf'):.2f}x over the default"),
    ]

