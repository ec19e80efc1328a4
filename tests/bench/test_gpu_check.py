"""`make gpu-check` runs on the CPU too (`--device cpu --small`), every offline model, so it cannot rot here."""

from __future__ import annotations

import json

import pytest
import torch

from bench import gpu_check

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Our tiny model: every family's training, decoding and scoring paths run in tests/zoo; this keeps the
# script itself from rotting (`python -m bench.gpu_check --device cpu --small` runs every model).
CPU_MODELS = ["tiny"]


def test_every_check_runs_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--device", "cpu", "--small", "--models", *CPU_MODELS, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["model"] for r in report["results"]] == CPU_MODELS
    for r in report["results"]:
        assert r["ok"], r
        assert r["training"]["steps"] == 2 and r["training"]["tokens_per_s"] > 0
        assert r["decoding"]["parsed"] == r["decoding"]["rows"]
        assert r["scoring"]["max_abs_diff"] <= gpu_check.SCORE_TOLERANCE
        for stage in ("training", "decoding", "scoring"):
            assert r[stage]["peak_memory_mb"] > 0
    first = report["results"][0]["run_py"]
    assert first["complete"] and first["training_ok"] and first["predictions"] == 4
    printed = capsys.readouterr().out
    assert f"all ok: {len(CPU_MODELS)} models on cpu" in printed and "tokens/s" in printed and "peak" in printed


def test_a_score_beyond_the_tolerance_is_a_mismatch():
    from backends.models import load_model
    from backends.transformers_backend import TransformersBackend

    prompts, intents = gpu_check._prompts(2)
    bf16 = TransformersBackend("tiny", loaded=load_model("tiny", device="cpu", dtype=torch.bfloat16))
    fp32 = TransformersBackend("tiny", loaded=load_model("tiny", device="cpu", dtype=torch.float32))
    assert gpu_check.check_scoring(bf16, fp32, "cpu", prompts, intents, gpu_check.SCORE_TOLERANCE)["ok"]
    assert not gpu_check.check_scoring(bf16, fp32, "cpu", prompts, intents, 0.0)["ok"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_it_says_so_and_exits_2(capsys):
    assert gpu_check.main([]) == 2
    assert "--device cpu" in capsys.readouterr().err
