"""`python -m evaluator --model tiny-llama3` in its three modes: a 128,256-token vocabulary, the real
Llama 3.2 chat template, multi-token labels scored on the KV-cached prompt, Outlines over the full vocabulary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backends.models import TINY_LLAMA3
from core.io import read_jsonl, write_jsonl_atomic

LABELS = {"positive", "negative", "neutral"}


@pytest.fixture(scope="module")
def few_items(split, tmp_path_factory):
    path = tmp_path_factory.mktemp("llama3eval") / "eval.jsonl"
    write_jsonl_atomic(path, split[1][:6])
    return path


# The CLI end to end on tiny-llama3; the same three modes run in-process on every family in make test
# (tests/zoo/test_evaluator_generation.py), so these are `slow`.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["score", "free", "constrained"])
def test_evaluator_modes_on_tiny_llama3(mode, few_items, tmp_path):
    out = tmp_path / mode
    result = subprocess.run(
        [sys.executable, "-m", "evaluator", "--task", "fin_sentiment", "--model", TINY_LLAMA3, "--eval",
         str(few_items), "--out", str(out), "--device", "cpu", "--bootstrap", "20", "--mode", mode,
         # Byte-level JSON: '{"label":"negative"}' is up to ~20 tokens of the filled-up vocabulary.
         "--max-new-tokens", "32"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["base"]["n"] == 6
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 6
    for row in rows:
        pred = row["base"]
        if mode == "score":
            assert pred["label"] in LABELS and set(pred["scores"]) == LABELS
            assert all(s < 0 for s in pred["scores"].values())
        elif mode == "constrained":
            assert pred["label"] in LABELS, pred  # the JSON schema admits only a label; 32 tokens close it
        else:
            assert pred["label"] in LABELS | {"invalid"}
    if mode == "score":
        assert metrics["base"]["invalid_rate"] == 0
