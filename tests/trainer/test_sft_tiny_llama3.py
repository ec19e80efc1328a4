"""The trainer on `tiny-llama3` (Llama 3.2 shape): the tiny defaults apply, and the tied embedding stays tied."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from backends.models import TINY_LLAMA3, load_model
from trainer.config import SIZE_DEFAULTS, TrainConfig


def test_tiny_defaults_apply_to_tiny_llama3():
    resolved = TrainConfig(model=TINY_LLAMA3).resolved()
    assert resolved.modules_to_save == SIZE_DEFAULTS["tiny"]["modules_to_save"]
    assert resolved.learning_rate == SIZE_DEFAULTS["tiny"]["learning_rate"]
    assert TrainConfig(model="meta-llama/Llama-3.2-1B-Instruct").resolved().modules_to_save == []


@pytest.mark.slow
def test_cli_trains_tiny_llama3_with_tied_embeddings(fin_files, tmp_path, repo):
    train_file, _ = fin_files
    out = tmp_path / "adapter"
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--task", "fin_sentiment", "--model", TINY_LLAMA3, "--train",
         str(train_file), "--out", str(out), "--max-steps", "2", "--batch-size", "4", "--max-length", "128",
         "--val-fraction", "0"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["steps"] == 2 and summary["model"] == TINY_LLAMA3
    assert summary["config"]["modules_to_save"] == ["embed_tokens", "lm_head"]
    # Tied: one trained 128,256 × 64 matrix serves as embedding and head (not two untied copies).
    embedding = 128_256 * 64
    assert embedding <= summary["trainable_params"] < 2 * embedding

    tuned, _ = load_model(TINY_LLAMA3, device="cpu", adapter=out)
    base, _ = load_model(TINY_LLAMA3, device="cpu")
    emb = tuned.get_input_embeddings().modules_to_save["default"].weight
    head = tuned.get_output_embeddings().modules_to_save["default"].weight
    assert emb.data_ptr() == head.data_ptr(), "the adapter's embedding and head are one tensor"
    assert not torch.equal(emb, base.get_input_embeddings().weight), "the embedding was trained"
