"""Measure what a training step really holds on the CPU, beside `trainer.plan`'s estimate of it.

    python -m trainer.calibrate                        # every offline tiny model, a few settings, a table
    python -m trainer.calibrate --model tiny-llama3 --batch 4 --length 256 --json
    row = measure("tiny", batch=4, length=256)         # {"measured": {...}, "estimated": {...}, "ratio": {...}}

Each row builds the real trainer (`trainer.sft.build_trainer`: TRL's SFTTrainer with its chunked LM head,
PEFT LoRA), feeds it a batch of exactly batch x length tokens (one row padded, so SDPA gets a padding
mask as in real batches), runs one optimizer step to create the AdamW state, then measures a second step
with `trainer.memory.TensorPeak`: the bytes of the tensors autograd saves in the forward pass (the
activations) and the peak of live tensor bytes over forward, backward and the optimizer step. The
weights and optimizer state are counted exactly from the tensors. "cpu-bf16" runs the CUDA recipe (bf16
base, fp32 LoRA, bf16 autocast) on the CPU, to check the bf16 terms of the estimate where no GPU is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from typing import Any

from backends.models import TINY_MODELS
from core.errors import run_cli
from core.records import Record
from trainer.config import TrainConfig
from trainer.memory import TensorPeak
from trainer.plan import estimate
from trainer.shapes import model_shape

# (label, overrides) of the settings `python -m trainer.calibrate` measures on every tiny model.
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("lora", {}),
    ("lora, no dropout", {"lora_dropout": 0.0}),
    ("lora, checkpointing", {"gradient_checkpointing": True}),
    ("lora + embeddings/head", {"modules_to_save": ["embed_tokens", "lm_head"]}),
    ("full", {"method": "full"}),
    ("lora, bf16 autocast", {"regime": "cpu-bf16"}),
    ("lora, batch 1 (no padding)", {"batch": 1}),
]


def _records(n: int = 4) -> list[Record]:
    return [Record.new(task="fin_sentiment", lang="en", text=f"Calibration sentence number {i}.", source="real",
                       labels={"label": "neutral"}) for i in range(n)]


def _batch(vocab: int, batch: int, length: int, answer: int, seed: int) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, min(vocab, 4000), (batch, length), generator=g)
    labels = ids.clone()
    labels[:, : length - answer] = -100
    mask = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:  # one padded row: real batches of different lengths give SDPA a padding mask
        mask[0, : length // 4] = 0
        labels[0, : length // 4] = -100
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def measure(model: str, *, batch: int = 4, length: int = 256, answer: int = 24, regime: str = "cpu",
            seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """One row: measured bytes and the estimate's, for `model` trained as `overrides` say (TrainConfig fields)."""
    import torch

    from core.tasks import load_task
    from trainer.sft import build_trainer

    overrides.setdefault("modules_to_save", [])
    cfg = TrainConfig(task="fin_sentiment", model=model, out="/tmp/seedloop-calibrate", device="cpu",
                      batch_size=batch, max_length=length, seed=seed, **overrides).resolved()
    # The dataset only has to exist (the batches are synthetic): room for its chat template's preamble.
    trainer = build_trainer(replace(cfg, max_length=max(length, 1024)), load_task("fin_sentiment"), _records(), [])
    net = trainer.model
    if cfg.gradient_checkpointing:  # as Trainer.train() turns it on (TRL's init already made inputs need grads)
        kwargs = {k: v for k, v in (trainer.args.activation_checkpointing_kwargs or {}).items()
                  if k not in {"every_n_layers", "offload"}} or None
        if hasattr(net, "activation_checkpointing_enable"):
            net.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            net.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    net.train()
    if regime == "cpu-bf16":  # the CUDA recipe: bf16 base weights, fp32 LoRA, bf16 autocast
        for p in net.parameters():
            if not p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if regime == "cpu-bf16"
                else contextlib.nullcontext())
    optimizer = trainer.create_optimizer()
    inputs = _batch(model_shape(model).vocab, batch, length, answer, seed)
    params = list(net.parameters())

    def step(saved: bool = False) -> TensorPeak:
        with TensorPeak("cpu", saved_tensors=saved, exclude=params) as peak:
            with autocast:
                loss = trainer.compute_loss(net, dict(inputs))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            del loss
        return peak

    first = step(saved=True)  # creates the AdamW state; its saved tensors are the activations
    second = step()  # the steady state: every later step looks like this one
    weights = sum(p.numel() * p.element_size() for p in params)
    moments = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                  if torch.is_tensor(t) and t.dim() > 0)
    est = estimate(cfg, regime, checkpointing=bool(cfg.gradient_checkpointing), answer=answer)
    parts = est.parts
    est_weights = parts["weights"] + parts.get("trainable weights", 0)
    est_step = est.peak - est_weights - parts["AdamW moments"]
    measured = {"weights": weights, "AdamW moments": moments, "activations": first.saved_bytes,
                "step peak": second.bytes, "total": weights + moments + second.bytes,
                "rss step peak": second.rss_peak_bytes}
    estimated = {"weights": est_weights, "AdamW moments": parts["AdamW moments"],
                 "activations": parts["activations kept for backward"], "step peak": est_step, "total": est.peak}
    return {"model": model, "regime": regime, "batch": batch, "length": length,
            "settings": {k: v for k, v in overrides.items() if k != "modules_to_save" or v},
            "measured": measured, "estimated": estimated,
            "ratio": {k: round(estimated[k] / measured[k], 3) for k in estimated if measured[k]}}


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'model':<13}{'setting':<26}{'activations MiB (est/meas)':>28}{'step peak MiB':>22}"
            f"{'total MiB':>22}{'RSS step MiB':>14}")
    lines = [head]
    mib = 2**20

    def pair(row: dict[str, Any], key: str) -> str:
        e, m = row["estimated"][key], row["measured"][key]
        return f"{e / mib:8.1f} /{m / mib:8.1f} ({e / m:.2f})"

    for row in rows:
        lines.append(f"{row['model']:<13}{row['label']:<26}{pair(row, 'activations'):>28}"
                     f"{pair(row, 'step peak'):>22}{pair(row, 'total'):>22}"
                     f"{row['measured']['rss step peak'] / mib:>14.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=list(TINY_MODELS), help="models to measure (default: the tiny ones)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--setting", nargs="*", default=None,
                   help=f"which settings (default all): {'; '.join(label for label, _ in SETTINGS)}")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rows = []
    for model in args.model:
        for label, overrides in SETTINGS:
            if args.setting and label not in args.setting:
                continue
            kw = {"batch": args.batch, "length": args.length, **overrides}
            row = measure(model, **kw)
            row["label"] = label
            rows.append(row)
            print(f"{model} / {label}: ratio {row['ratio']}", file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    run_cli(main)
