"""What a training run reports: data counts, peak memory and the loss-curve PNG."""

from __future__ import annotations

import resource
import sys
from collections import Counter
from pathlib import Path

from core.records import Record


def data_counts(records: list[Record]) -> dict:
    """Rows in total, per language, per source and per (language, source)."""
    return {
        "total": len(records),
        "by_lang": dict(sorted(Counter(r.lang for r in records).items())),
        "by_source": dict(sorted(Counter(r.source for r in records).items())),
        "by_lang_source": dict(sorted(Counter(f"{r.lang}/{r.source}" for r in records).items())),
    }


def peak_memory_mb() -> float:
    """Peak GPU memory allocated by torch on CUDA; otherwise this process's peak resident set size."""
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def plot_loss_curve(history: list[dict], path: Path, title: str = "") -> None:
    """Training loss per logged step and validation loss per evaluation, on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", marker="." if len(train) < 30 else None)
    if val:
        ax.plot(*zip(*val, strict=True), label="val loss", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
