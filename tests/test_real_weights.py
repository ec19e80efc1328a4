"""Every stage on the packaged real weights (smollm2-135m), through the real entry points: `pytest -m real`.

Budgeted for `make test` (a few minutes on 2 cores): a handful of samples, a few training steps, a dozen
eval items, run.py with a short time budget. What each asserts is what random weights cannot show:
constrained decoding closes real text 100% of the time, the real model's label votes, a LoRA step that
lowers the held-out loss of a pretrained model, the evaluator's three modes and run.py on a real model.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from core.io import read_jsonl, write_jsonl_atomic
from core.records import Record
from core.tasks import load_task
from tests.cli_helpers import PY, REPO, child_env

REAL = "smollm2-135m"
SAMPLES = REPO / "data" / "samples"
pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([PY, *args], cwd=REPO, env=child_env(OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fin_records() -> list[Record]:
    """The fin_sentiment sample rows (en + vi) as records, one per distinct text."""
    task = load_task("fin_sentiment")
    records: dict[str, Record] = {}
    for lang in ("en", "vi"):
        for row in read_jsonl(SAMPLES / "fin_sentiment" / f"{lang}.jsonl"):
            label = task.normalise_label(row["label"])
            if label:
                rec = Record.new(task=task.name, lang=lang, text=row["text"], labels={"label": label},
                                 source="real")
                records.setdefault(rec.id, rec)
    return list(records.values())


def test_generation_parses_every_sample_and_the_real_model_votes(fin_records, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    write_jsonl_atomic(seeds, [r for r in fin_records if r.lang == "en"])
    out = tmp_path / "gen"
    done = _cli("generate.py", "--task", "fin_sentiment", "--lang", "en", "--n", "6", "--model", REAL,
                "--seeds", str(seeds), "--out", str(out), "--no-review", "--quiet", "--batch-size", "6")
    assert done.returncode == 0, done.stderr[-2000:]
    samples = list(read_jsonl(out / "samples.jsonl"))
    assert len(samples) == 6 and all(s["text"] and not s["provenance"].get("error") for s in samples)
    assert all(s["provenance"]["model"] == REAL for s in samples)
    report = json.loads((out / "validation.json").read_text())
    validated = [*read_jsonl(out / "accepted.jsonl"), *read_jsonl(out / "rejected.jsonl")]
    votes = [v for r in validated for v in r["verdicts"] if v["name"] == "self_consistency"]
    assert report["validators"]["self_consistency"]["checked"] == len(votes)
    for verdict in votes:
        if verdict["details"].get("abstained"):  # the real model labelled the seeds first, no better than chance
            competence = verdict["details"]["competence"]
            assert competence["seeds"] >= 30 and not competence["competent"]
            assert competence["separation"] < 0.2 and competence["keeps_true"] - competence["keeps_wrong"] < 0.2
        else:  # k votes drawn from the real model's label probabilities
            assert sum(verdict["details"]["votes"].values()) == verdict["details"]["k"] == 3
            probs = verdict["details"]["probs"]
            assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-3) and max(probs.values()) < 1.0
    for record in read_jsonl(out / "accepted.jsonl"):  # the quality rules keep preambles and placeholders out
        assert not record["text"].lower().startswith(("here are", "here is", "sure", "{"))
        assert "{{" not in record["text"]


def test_lora_lowers_the_held_out_loss_of_a_pretrained_model(fin_records, tmp_path):
    from trainer.config import TrainConfig
    from trainer.sft import build_trainer

    task = load_task("fin_sentiment")
    held, train = fin_records[::8], [r for i, r in enumerate(fin_records) if i % 8]
    cfg = TrainConfig(task=task.name, model=REAL, out=str(tmp_path / "a"), device="cpu", max_steps=4,
                      batch_size=4, learning_rate=1e-3, val_fraction=0.0, logging_steps=2).resolved()
    trainer = build_trainer(cfg, task, train, held)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < before, (before, after)


@pytest.mark.parametrize("mode", ["score", "constrained", "free"])
def test_the_evaluators_three_modes_on_real_weights(mode, fin_records, tmp_path):
    eval_file = tmp_path / "eval.jsonl"
    write_jsonl_atomic(eval_file, fin_records[::15])
    done = _cli("-m", "evaluator", "--task", "fin_sentiment", "--model", REAL, "--eval", str(eval_file),
                "--out", str(tmp_path / "out"), "--mode", mode, "--device", "cpu", "--bootstrap", "50",
                "--no-baseline")
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n"] == len(fin_records[::15])
    base = metrics["base"]
    predictions = list(read_jsonl(tmp_path / "out" / "predictions.jsonl"))
    assert len(predictions) == metrics["n"]
    if mode != "free":  # scores and constrained answers are always a label; free text may miss one
        assert base["invalid_rate"] == 0.0
    assert 0.0 <= base["accuracy"] <= 1.0


def test_run_py_trains_and_predicts_with_a_real_model(tmp_path):
    northstar = SAMPLES / "northstar"
    val = tmp_path / "val.jsonl"  # two rows: every prediction is the real model's score and its written reply
    write_jsonl_atomic(val, list(read_jsonl(northstar / "val.jsonl"))[:2])
    out = tmp_path / "results.json"
    done = _cli("run.py", "--train", str(northstar / "train.jsonl"), "--val", str(val),
                "--weights", str(tmp_path / "w"), "--output", str(out), "--base-model", REAL, "--retrieval", "off",
                "--neighbours", "0", "--folds", "0", "--time-budget-s", "300",
                "--config", str(_write(tmp_path / "cfg.json", {"max_steps": 2, "batch_size": 2})))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    training = results["training"]
    assert training["ok"] and training["steps"] > 0 and training["base_model"] == REAL
    assert training["prediction"]["model_loaded"] and training["prediction"]["model_scored_rows"] == 2
    assert (tmp_path / "w" / "adapter_config.json").is_file()
    assert [p["id"] for p in results["predictions"]] == [r["id"] for r in read_jsonl(val)]
    assert all(p["tokens_used"] > 0 and p["prediction"] for p in results["predictions"])


def test_run_py_without_hub_access_trains_the_packaged_model(tmp_path):
    """The default base model is a Hub id; offline it cannot load, so run.py trains smollm2-135m and says so."""
    northstar = SAMPLES / "northstar"
    out = tmp_path / "results.json"
    done = _cli("run.py", "--train", str(northstar / "train.jsonl"), "--val", str(northstar / "val.jsonl"),
                "--weights", str(tmp_path / "w"), "--output", str(out), "--folds", "0", "--time-budget-s", "120",
                "--retrieval", "only", "--neighbours", "0",  # the adapter still trains; short prompts, fast
                "--config", str(_write(tmp_path / "cfg.json", {"max_steps": 1, "batch_size": 2})))
    assert done.returncode == 0, done.stderr[-2000:]
    training = json.loads(out.read_text())["training"]
    assert training["base_model"] == REAL and training["steps"] > 0
    fallback = training["base_model_fallback"]
    assert fallback["asked"] == "unsloth/Llama-3.2-3B-Instruct" and fallback["used"] == REAL and fallback["reason"]
    assert "training the packaged real model smollm2-135m instead" in done.stderr


def _write(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj))
    return path
