"""The one-shot contract, through the real entry point: `python run.py ... --base-model tiny`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NORTHSTAR = REPO / "data" / "samples" / "northstar"
PREDICTION_KEYS = {"id", "prediction", "predicted_intent", "latency_ms", "tokens_used"}
TRAINING_KEYS = {"steps", "train_loss", "val_loss", "wall_clock_s"}


def run_contract(tmp: Path, train: Path = NORTHSTAR / "train.jsonl", val: Path = NORTHSTAR / "val.jsonl",
                 *extra: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "run.py", "--train", str(train), "--val", str(val), "--weights", str(tmp / "w"),
         "--output", str(out), "--base-model", "tiny", *extra],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600,
    )
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def write(path: Path, rows: list[dict] | str) -> Path:
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    first = run_contract(tmp_path_factory.mktemp("run1"))
    second = run_contract(tmp_path_factory.mktemp("run2"))
    return first, second


def test_output_follows_the_contract(two_runs):
    (proc, results), _ = two_runs
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(results["training"]) >= TRAINING_KEYS
    assert results["training"]["steps"] > 0 and results["training"]["val_loss"] is not None
    val_ids = [json.loads(line)["id"] for line in (NORTHSTAR / "val.jsonl").read_text().splitlines()]
    assert [p["id"] for p in results["predictions"]] == val_ids, "one prediction per val row, in input order"
    taxonomy = {json.loads(line)["intent"] for line in (NORTHSTAR / "train.jsonl").read_text().splitlines()}
    for prediction in results["predictions"]:
        assert set(prediction) == PREDICTION_KEYS
        assert prediction["predicted_intent"] in taxonomy
        assert isinstance(prediction["prediction"], str) and prediction["prediction"]
        assert prediction["latency_ms"] > 0 and prediction["tokens_used"] > 0


def test_adapter_is_standard_peft(two_runs):
    from core.models import load_model

    (proc, _), _ = two_runs
    weights = Path(proc.args[proc.args.index("--weights") + 1])
    assert (weights / "adapter_config.json").is_file() and (weights / "adapter_model.safetensors").is_file()
    model, _ = load_model("tiny", device="cpu", adapter=weights)
    assert type(model).__name__ == "PeftModelForCausalLM"


def test_same_seed_gives_identical_predictions(two_runs):
    (_, a), (_, b) = two_runs
    strip = [{k: v for k, v in p.items() if k != "latency_ms"} for p in a["predictions"]]
    assert strip == [{k: v for k, v in p.items() if k != "latency_ms"} for p in b["predictions"]]
    assert a["training"]["train_loss"] == b["training"]["train_loss"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [("empty train", lambda t: (write(t / "t.jsonl", ""), NORTHSTAR / "val.jsonl"), "t.jsonl: empty file"),
     ("non-JSON line", lambda t: (write(t / "t.jsonl", '{"id": "a"\n'), NORTHSTAR / "val.jsonl"), "t.jsonl:1: not valid JSON"),
     ("missing field", lambda t: (write(t / "t.jsonl", [{"id": "a", "ticket": "x", "intent": "bug.report"}]),
                                  NORTHSTAR / "val.jsonl"), "t.jsonl:1: missing field 'ideal_reply'"),
     ("duplicate val ids", lambda t: (NORTHSTAR / "train.jsonl",
                                      write(t / "v.jsonl", [{"id": "v1", "ticket": "a"}, {"id": "v1", "ticket": "b"}])),
      "v.jsonl:2: duplicate id 'v1'"),
     ("missing file", lambda t: (t / "nope.jsonl", NORTHSTAR / "val.jsonl"), "nope.jsonl: file not found")],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, name, make, message):
    train, val = make(tmp_path)
    proc, results = run_contract(tmp_path, train, val)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert results is None


def test_what_can_work_warns_and_still_predicts(tmp_path):
    """Val rows carrying labels, and a train set with a single intent: a warning and a sensible result."""
    one_intent = [dict(r, intent="bug.report") for r in rows(NORTHSTAR / "train.jsonl")[:6]]
    val = [dict(r, intent="billing.refund_request") for r in rows(NORTHSTAR / "val.jsonl")[:3]]
    config = write(tmp_path / "cfg.json", '{"max_steps": 2}')
    proc, results = run_contract(tmp_path, write(tmp_path / "t.jsonl", one_intent), write(tmp_path / "v.jsonl", val),
                                 "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "val rows carry intent; ignored" in proc.stderr
    assert "every training row has intent 'bug.report'" in proc.stderr
    assert [p["predicted_intent"] for p in results["predictions"]] == ["bug.report"] * 3


def test_time_budget_stops_training_early(tmp_path):
    config = write(tmp_path / "cfg.json", '{"epochs": 200}')
    proc, results = run_contract(tmp_path, NORTHSTAR / "train.jsonl", NORTHSTAR / "val.jsonl",
                                 "--time-budget-s", "30", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results["training"]["stopped_early"] is True
    assert len(results["predictions"]) == 10


def test_unknown_config_key_is_refused(tmp_path):
    proc, _ = run_contract(tmp_path, NORTHSTAR / "train.jsonl", NORTHSTAR / "val.jsonl",
                           "--config", str(write(tmp_path / "cfg.json", '{"epoch": 3}')))
    assert proc.returncode == 2 and "unknown setting 'epoch'" in proc.stderr


def test_package_holds_what_run_py_needs_and_nothing_else(tmp_path):
    out = tmp_path / "repo.zip"
    proc = subprocess.run([sys.executable, "-m", "core.package", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size < 20 * 1024 * 1024
    names = zipfile.ZipFile(out).namelist()
    assert {"run.py", "README.md", "requirements.txt", "tasks/support_intent.yaml", "core/tasks.py",
            "trainer/sft.py", "generator/backends/transformers_backend.py"} <= set(names)
    assert not [n for n in names if n.startswith(("data/", "tests/", "runs/", ".venv/")) or "__pycache__" in n
                or n.endswith((".safetensors", ".bin", ".db"))]
    requirements = zipfile.ZipFile(out).read("requirements.txt").decode()
    assert "transformers" in requirements and "peft" in requirements and "trl" in requirements

    # The archive runs on its own: unpack it and call run.py from there.
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(folder)
    proc = subprocess.run([sys.executable, "run.py", "--help"], cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0 and "--time-budget-s" in proc.stdout
