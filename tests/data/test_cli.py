"""The real entry points: `python -m data prepare|eda` on the sample files, bad input, the notebook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.io import read_records
from core.records import normalise_text
from data.__main__ import main
from data.prepare import prepare

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_prepare_on_samples_writes_splits_summary_and_report(tmp_path, samples_dir):
    proc = _run("prepare", "--task", "fin_sentiment", "--source", str(samples_dir), "--out", str(tmp_path),
                "--train-per-lang", "40", "--eval-per-lang", "10", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    train, evals = read_records(tmp_path / "data/train.jsonl"), read_records(tmp_path / "data/eval.jsonl")
    assert [sum(r.lang == lang for r in train) for lang in ("en", "vi")] == [40, 40]
    assert [sum(r.lang == lang for r in evals) for lang in ("en", "vi")] == [10, 10]
    assert not {normalise_text(r.text) for r in train} & {normalise_text(r.text) for r in evals}
    assert all(r.provenance["dataset"] == "samples" and "raw_label" in r.provenance for r in train)
    summary = json.loads((tmp_path / "data/prepare_summary.json").read_text())
    assert summary["cleaning"]["en"]["conflicting_labels"] == 2 and summary["selection"]["cross_split_pairs"] == 0
    removed = {r.meta["source_id"] for r in read_records(tmp_path / "data/removed.jsonl")}
    assert {"en_021", "en_027", "en_031", "en_036", "vi_021", "vi_025", "vi_033", "vi_029"} <= removed
    report = (tmp_path / "eda/report.md").read_text()
    assert "## Findings that affect model performance" in report and "conflicting labels" in report
    assert (tmp_path / "eda/labels.png").stat().st_size > 1000
    # same seed, same files
    again = prepare(sources=[str(samples_dir)], out=tmp_path / "again", train_per_lang=40, eval_per_lang=10,
                    seed=1, eda=False)
    assert again["train"] == 80
    assert (tmp_path / "again/data/train.jsonl").read_text() == (tmp_path / "data/train.jsonl").read_text()


def test_eda_command_names_the_planted_problems(tmp_path, samples_dir):
    proc = _run("eda", "--source", str(samples_dir), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "eda/stats.json").read_text())["stats"]
    en, vi = stats["languages"]["en"], stats["languages"]["vi"]
    assert (en["exact_duplicate_rows"], en["near_duplicate_pairs"], en["conflicting_label_groups"]) == (2, 1, 1)
    assert (vi["exact_duplicate_rows"], vi["near_duplicate_pairs"], vi["conflicting_label_groups"]) == (2, 1, 1)
    assert en["mojibake_repairable"] == 2 and vi["mojibake_repairable"] == 1
    assert [m["detected"] for m in en["language_mismatch_examples"]] == ["de"]
    assert [m["detected"] for m in vi["language_mismatch_examples"]] == ["en"]


def test_too_few_rows_and_bad_files_are_one_line_errors(tmp_path, samples_dir, capsys):
    proc = _run("prepare", "--source", str(samples_dir), "--out", str(tmp_path), "--no-eda")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "en: only 55 clean rows for 3000 training + 250 eval examples" in proc.stderr
    bad = tmp_path / "mine.csv"
    bad.write_text("headline,label\nProfit up,positive\n")
    with pytest.raises(SystemExit) as exc:
        from core.errors import run_cli

        run_cli(main, ["eda", "--source", str(bad), "--lang", "en", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "mine.csv:1: missing column 'text'" in capsys.readouterr().err


@pytest.mark.slow  # ~10 s: a kernel starts and runs every cell; `pytest -m slow` or `make test-all`
def test_notebook_executes(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("EDA_OUT", str(tmp_path))
    monkeypatch.setenv("EDA_SOURCE", "data/samples")
    nb = nbformat.read(REPO / "notebooks/eda.ipynb", as_version=4)
    # kernel "python3" is launched with this interpreter (jupyter_client swaps 'python' for sys.executable)
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    assert (tmp_path / "eda/report.md").is_file()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "conflicting labels" in printed


@pytest.mark.slow
def test_full_prepare_on_real_data(shared_datasets, tmp_path):
    pytest.importorskip("langdetect")
    summary = prepare(sources=[str(shared_datasets)], out=tmp_path, eda=False)
    assert (summary["train"], summary["eval"]) == (6000, 500)
    for lang in ("en", "vi"):
        sel = summary["selection"]["languages"][lang]
        assert sum(sel["train"].values()) == 3000 and sum(sel["eval"].values()) == 250
    assert summary["selection"]["cross_split_pairs"] == 0
    assert summary["selection"]["languages"]["vi"]["eval_pool"] == "held-out split"
    assert summary["cleaning"]["en"]["lossy_mojibake"] == 111
