"""LoRA SFT on the tiny model: what trains, what is masked, what is saved, and that it is reproducible."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from backends.models import load_model
from trainer.config import TrainConfig
from trainer.sft import build_trainer, train

FAST = {"batch_size": 8, "max_length": 192, "logging_steps": 2, "val_fraction": 0.1}


def _config(out, **kw) -> TrainConfig:
    return TrainConfig(task="fin_sentiment", model="tiny", out=str(out), device="cpu", **{**FAST, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fin_records):
    """One short LoRA run (embeddings and head trained as well: the tiny model's default)."""
    out = tmp_path_factory.mktemp("adapter")
    return out, train(_config(out, max_steps=24, learning_rate=3e-3), records=fin_records)


def test_lora_changes_only_the_adapter(fin_task, fin_records, tmp_path):
    trainer = build_trainer(_config(tmp_path, max_steps=2).resolved(), fin_task, fin_records[:32], [])
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    base = [n for n in before if ".base_layer." in n or ("lora_" not in n and "modules_to_save" not in n)]
    adapter = [n for n, p in after.items() if p.requires_grad]
    assert base and adapter
    assert all(torch.equal(before[n], after[n]) for n in base)
    assert all("lora_" in n or "modules_to_save" in n for n in adapter)
    changed = [n for n in adapter if not torch.equal(before[n], after[n])]
    assert any("lora_B" in n for n in changed) and any("embed_tokens" in n for n in changed)


def test_labels_mask_everything_but_the_assistant_turn(fin_task, fin_records, tmp_path):
    trainer = build_trainer(_config(tmp_path).resolved(), fin_task, fin_records[:8], [])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    tok = trainer.processing_class
    answers = {r.labels["label"] + "<|eot_id|>" for r in fin_records[:8]}
    header = tok.convert_tokens_to_ids("<|end_header_id|>")
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        kept = labels != -100
        assert tok.decode(ids[kept]) in answers
        # Every kept token comes after the last header token: the whole prompt is masked.
        last_header = (ids == header).nonzero().max().item()
        assert kept.nonzero().min().item() > last_header
        assert labels[~kept].eq(-100).all() and kept.sum() <= 3


def test_loss_goes_down_and_summary_is_complete(trained):
    out, summary = trained
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    assert len(losses) >= 5 and losses[-1] < losses[0] * 0.8
    on_disk = json.loads((out / "training_summary.json").read_text())
    for key in ("steps", "train_loss", "val_loss", "wall_clock_s", "tokens_per_s", "peak_memory_mb",
                "trainable_params", "total_params", "stopped_early", "config", "data"):
        assert key in on_disk
    assert on_disk["steps"] == 24 and on_disk["stopped_early"] is False
    assert on_disk["data"]["train"]["by_lang"].keys() == {"en", "vi"}
    assert on_disk["data"]["train"]["total"] + on_disk["data"]["val"]["total"] == 120
    assert 0 < on_disk["trainable_params"] < on_disk["total_params"]
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_saved_adapter_loads_back_onto_the_base_model(trained, fin_task):
    out, _ = trained
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    tuned, tok = load_model("tiny", device="cpu", adapter=out)
    base, _ = load_model("tiny", device="cpu")
    messages = fin_task.classify_messages("Operating profit rose 40% to EUR 12m.", "en")
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        t, b = tuned(**ids).logits[0, -1], base(**ids).logits[0, -1]
    label_ids = [tok.convert_tokens_to_ids(tok.tokenize(name))[0] for name in fin_task.label_names]
    assert not torch.allclose(t, b)
    # The tuned model puts far more mass on the label tokens than the random base does.
    assert t.softmax(-1)[label_ids].sum() > 0.5 > b.softmax(-1)[label_ids].sum()


def test_same_seed_same_adapter(fin_records, tmp_path):
    tensors = []
    for run in ("a", "b"):
        train(_config(tmp_path / run, max_steps=3, batch_size=4, val_fraction=0.0), records=fin_records[:24])
        tensors.append(load_file(tmp_path / run / "adapter_model.safetensors"))
    assert tensors[0].keys() == tensors[1].keys()
    assert all(torch.equal(tensors[0][k], tensors[1][k]) for k in tensors[0])


def test_time_budget_stops_cleanly(fin_records, tmp_path):
    summary = train(_config(tmp_path, max_steps=10_000, time_budget_s=6, val_fraction=0.0), records=fin_records)
    assert summary["stopped_early"] is True
    assert 0 < summary["steps"] < 10_000
    assert (tmp_path / "adapter_model.safetensors").is_file()


def test_full_fine_tuning_trains_every_weight(fin_records, tmp_path):
    summary = train(_config(tmp_path, method="full", max_steps=2, val_fraction=0.0), records=fin_records[:32])
    assert summary["trainable_params"] == summary["total_params"]
    assert (tmp_path / "model.safetensors").is_file()
    load_model(str(tmp_path), device="cpu")


def test_cli_trains_on_record_files(fin_files, tmp_path, repo):
    train_file, curated = fin_files
    out = tmp_path / "adapter"
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--task", "fin_sentiment", "--model", "tiny", "--train", str(train_file),
         str(curated), "--out", str(out), "--max-steps", "2", "--batch-size", "4", "--merge"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "training_summary.json").read_text())
    counts = summary["data"]["train"]["by_source"] | summary["data"]["val"]["by_source"]
    assert set(counts) == {"real", "synthetic"}
    assert (out / "merged" / "model.safetensors").is_file()
    assert '"steps": 2' in proc.stdout


def test_qlora_needs_a_gpu(fin_records, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: see test_qlora_on_gpu")
    from core.errors import UserError

    with pytest.raises(UserError, match="--method qlora needs a CUDA GPU"):
        train(_config(tmp_path, method="qlora", max_steps=1), records=fin_records[:8])


@pytest.mark.gpu
def test_qlora_on_gpu(fin_records, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("bitsandbytes")
    summary = train(_config(tmp_path, method="qlora", max_steps=2, device="cuda"), records=fin_records[:16])
    assert summary["steps"] == 2 and (tmp_path / "adapter_model.safetensors").is_file()
