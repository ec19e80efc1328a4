"""`python run.py ... --base-model tiny-gemma` and `tiny-qwen2` write complete results on the Northstar sample
(cross-fit off, retrieval off and one training step: the point is every stage on the family's template and
vocabulary, so the tuned model itself scores every intent and writes every reply)."""

from __future__ import annotations

import json

import pytest

from tests.test_run import NORTHSTAR, PREDICTION_KEYS, RUN_TIMEOUT_S, TRAINING_KEYS, run_contract, write

pytestmark = [pytest.mark.zoo, pytest.mark.timeout(RUN_TIMEOUT_S)]


@pytest.mark.parametrize("model", ["tiny-gemma", "tiny-qwen2"])
def test_run_py_writes_complete_results(model, tmp_path):
    config = write(tmp_path / "cfg.json", '{"max_steps": 1, "batch_size": 2}')
    proc, results = run_contract(tmp_path, NORTHSTAR / "train.jsonl", NORTHSTAR / "val.jsonl", "--folds", "0",
                                 "--retrieval", "off", "--config", str(config), model=model)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "System role" not in proc.stderr
    assert set(results["training"]) >= TRAINING_KEYS and results["training"]["steps"] == 1
    assert results["training"]["model"] == model
    taxonomy = {json.loads(line)["intent"] for line in (NORTHSTAR / "train.jsonl").read_text().splitlines()}
    val_ids = [json.loads(line)["id"] for line in (NORTHSTAR / "val.jsonl").read_text().splitlines()]
    assert [p["id"] for p in results["predictions"]] == val_ids
    for prediction in results["predictions"]:
        assert set(prediction) == PREDICTION_KEYS and prediction["predicted_intent"] in taxonomy
        assert prediction["prediction"] and prediction["tokens_used"] > 0
    plan = results["training"]["prediction"]
    assert plan["model_loaded"] and plan["model_scored_rows"] == plan["generated_rows"] == len(val_ids)
    assert (tmp_path / "w" / "adapter_config.json").is_file()
