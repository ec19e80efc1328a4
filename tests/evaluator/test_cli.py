"""End to end on the tiny model: `python -m evaluator` with a LoRA adapter, its outputs, the three
modes, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.io import read_jsonl, write_jsonl_atomic
from evaluator.parser import parse_label
from evaluator.run import evaluate

MODEL_KEYS = {"accuracy", "macro_f1", "by_lang"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m evaluator ARGS` on the tiny model unless ARGS name another (the default is a real model)."""
    model = [] if "--model" in args or (args and args[0] == "data-value") else ["--model", "tiny"]
    return subprocess.run([sys.executable, "-m", "evaluator", *args, *model], capture_output=True, text=True,
                          timeout=300)


def test_cli_base_vs_tuned_writes_the_report(adapter, data_files, tmp_path):
    out = tmp_path / "eval"
    result = run_cli("--task", "fin_sentiment", "--model", "tiny", "--adapter", str(adapter),
                     "--eval", str(data_files["eval"]), "--out", str(out), "--device", "cpu", "--bootstrap", "200")
    assert result.returncode == 0, result.stderr
    assert "McNemar p" in result.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    for model in ("base", "tuned"):
        assert set(metrics[model]) >= MODEL_KEYS
        assert set(metrics[model]["by_lang"]) == {"en", "vi"}
        assert {"accuracy", "macro_f1"} <= set(metrics[model]["by_lang"]["en"])
        assert 0 <= metrics[model]["accuracy"] <= 1
        assert metrics[model]["invalid_rate"] == 0  # choice scoring always answers a label
    assert {"accuracy", "by_lang"} <= set(metrics["majority_baseline"])
    assert {"mcnemar_p", "accuracy_delta", "accuracy_delta_ci"} <= set(metrics["paired"])
    # The fixture's adapter was trained from records, not files: no training file is known, and it says so.
    assert metrics["baseline"] is None and "--baseline-train" in metrics["baseline_note"]
    assert metrics["paired"]["accuracy_delta"] == pytest.approx(
        metrics["tuned"]["accuracy"] - metrics["base"]["accuracy"])

    rows = read_jsonl(out / "predictions.jsonl")
    held = read_jsonl(data_files["eval"])
    assert [r["id"] for r in rows] == [r["id"] for r in held]
    for row in rows:
        for model in ("base", "tuned"):
            assert row[model]["label"] in {"positive", "negative", "neutral"}
            assert set(row[model]["scores"]) == {"positive", "negative", "neutral"}
            assert row[model]["prompt"][-1]["content"].endswith(row["text"])
        assert row["agree"] == (row["base"]["label"] == row["tuned"]["label"])

    report = (out / "report.md").read_text()
    for heading in ("## Summary", "## Base vs tuned", "## Per language", "## Per label", "## Prompts",
                    "## Items where the models disagree"):
        assert heading in report
    assert "| cheap baseline | none: no training file known: pass --baseline-train FILE" in report
    for png in ("confusion_base.png", "confusion_tuned.png", "by_lang.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in report


def test_free_and_constrained_modes_parse_what_the_models_write(fin_task, adapter, split, tmp_path):
    train, held = split
    items = held[:6]
    free = evaluate(fin_task, items, "tiny", adapter, tmp_path / "free", mode="free", shots=2, shot_pool=train,
                    device="cpu", n_bootstrap=50, max_new_tokens=8)
    rows = read_jsonl(tmp_path / "free" / "predictions.jsonl")
    for row in rows:
        for model in ("base", "tuned"):
            pred = row[model]
            assert pred["rule"] in {"json", "exact", "case_folded", "synonym", "first_mention", "invalid"}
            assert (pred["label"] == "invalid") == (pred["rule"] == "invalid")
            assert (parse_label(pred["raw"], fin_task).label or "invalid") == pred["label"]
            assert pred["correct"] == (pred["label"] == row["gold"])
        assert len(row["base"]["prompt"]) == 6  # system, 2 × (user, assistant), user
    for model in ("base", "tuned"):  # an invalid answer is never counted as right
        assert free[model]["accuracy"] <= 1 - free[model]["invalid_rate"]
        assert sum(free[model]["rules"].values()) == len(items)

    constrained = evaluate(fin_task, items, "tiny", adapter, None, mode="constrained", device="cpu", n_bootstrap=50)
    assert constrained["tuned"]["n"] == 6
    assert set(constrained["tuned"]["rules"]) <= {"constrained", "invalid"}


def test_base_only_without_adapter_beside_the_cheap_baseline(data_files, tmp_path):
    result = run_cli("--task", "fin_sentiment", "--eval", str(data_files["eval"]), "--out", str(tmp_path),
                     "--device", "cpu", "--bootstrap", "50", "--baseline-train", str(data_files["train"]))
    assert result.returncode == 0, result.stderr
    assert "cheap baseline: accuracy" in result.stdout and "base vs cheap baseline" in result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "base" in metrics and "tuned" not in metrics and "paired" not in metrics

    cheap = metrics["baseline"]
    assert set(cheap["by_lang"]) == {"en", "vi"} and cheap["missing_langs"] == []
    assert cheap["classifiers"]["en"]["features"] == "minilm" and cheap["classifiers"]["vi"]["features"] == "tfidf"
    assert cheap["train_files"] == [str(data_files["train"])]
    rows = read_jsonl(tmp_path / "predictions.jsonl")
    assert cheap["accuracy"] == pytest.approx(sum(r["baseline"]["correct"] for r in rows) / len(rows))
    pb = metrics["paired_baseline"]
    assert pb["model"] == "base" and set(pb["by_lang"]) == {"en", "vi"}
    assert pb["accuracy_delta"] == pytest.approx(metrics["base"]["accuracy"] - cheap["accuracy"])
    report = (tmp_path / "report.md").read_text()
    assert "| cheap baseline (classifier) |" in report and "## Cheap baseline vs base (paired, same items)" in report
    assert "| en | " in report and " | baseline | " in report  # the per-language rows


@pytest.mark.parametrize(("row_change", "message"), [
    ({"labels": {"label": "sideways"}}, "field 'labels.label': unknown label 'sideways'"),
    ({"labels": {}}, "field 'labels.label': missing"),
    ({"task": "support_intent"}, "field 'task'"),
])
def test_bad_eval_records_are_one_line_errors(data_files, tmp_path, row_change, message):
    rows = read_jsonl(data_files["eval"])[:3]
    rows[1].update(row_change)
    bad = tmp_path / "bad.jsonl"
    write_jsonl_atomic(bad, rows)
    result = run_cli("--task", "fin_sentiment", "--eval", str(bad), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}:2: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_adapter_folder_is_a_user_error(data_files, tmp_path):
    result = run_cli("--task", "fin_sentiment", "--eval", str(data_files["eval"]), "--out", str(tmp_path),
                     "--adapter", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "not a PEFT adapter folder" in result.stderr and "Traceback" not in result.stderr


def test_help_names_the_command():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--adapter" in result.stdout and "--mode" in result.stdout


def test_a_labelled_csv_is_evaluated_like_the_same_records(split, data_files, tmp_path):
    import csv

    _, held = split
    rows = [{"headline": r.text, "sentiment": r.labels["label"], "language": r.lang} for r in held]
    table = tmp_path / "eval.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["headline", "sentiment", "language"])
        writer.writeheader()
        writer.writerows(rows)
    from_csv = run_cli("--task", "fin_sentiment", "--eval", str(table), "--text-col", "headline",
                       "--label-col", "sentiment", "--lang-col", "language", "--out", str(tmp_path / "csv"),
                       "--device", "cpu", "--bootstrap", "50")
    assert from_csv.returncode == 0, from_csv.stderr
    from_jsonl = run_cli("--task", "fin_sentiment", "--eval", str(data_files["eval"]), "--out", str(tmp_path / "rec"),
                         "--device", "cpu", "--bootstrap", "50")
    assert from_jsonl.returncode == 0, from_jsonl.stderr
    a = json.loads((tmp_path / "csv" / "metrics.json").read_text())["base"]
    b = json.loads((tmp_path / "rec" / "metrics.json").read_text())["base"]
    for key in ("n", "accuracy", "macro_f1", "accuracy_ci", "per_class", "confusion"):
        assert a[key] == b[key], key
    assert set(a["by_lang"]) == {"en", "vi"}

    rows[1]["sentiment"] = "sideways"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["headline", "sentiment", "language"])
        writer.writeheader()
        writer.writerows(rows)
    bad = run_cli("--task", "fin_sentiment", "--eval", str(table), "--text-col", "headline", "--label-col",
                  "sentiment", "--lang", "en", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"error: {table}:3: field 'sentiment': unknown label 'sideways'")
    assert "Traceback" not in bad.stderr
