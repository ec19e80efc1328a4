"""`generate` with a real eval split writes the data-value report of the accepted samples beside the queue."""

from __future__ import annotations

import json
import subprocess

from core.io import read_jsonl, write_jsonl_atomic
from core.records import Record
from core.tasks import load_task
from loop.generate import generate
from tests.cli_helpers import PY, REPO, child_env


def _records(samples_dir, lang: str) -> list[Record]:
    task = load_task("fin_sentiment")
    out = {}
    for row in read_jsonl(samples_dir / "fin_sentiment" / f"{lang}.jsonl"):
        label = task.normalise_label(row["label"])
        if label:
            record = Record.new(task=task.name, lang=lang, text=row["text"], labels={"label": label})
            out.setdefault(record.id, record)
    return list(out.values())


def test_generate_writes_the_data_value_report_of_the_accepted_samples(samples_dir, tmp_path):
    records = _records(samples_dir, "en") + _records(samples_dir, "vi")
    train = [r.model_copy(update={"split": "train"}) for i, r in enumerate(records) if i % 4]
    held = [r.model_copy(update={"split": "eval"}) for i, r in enumerate(records) if i % 4 == 0]
    write_jsonl_atomic(tmp_path / "train.jsonl", train)
    write_jsonl_atomic(tmp_path / "eval.jsonl", held)
    out = tmp_path / "run"
    generate(task="fin_sentiment", lang="en", n=6, seeds=tmp_path / "train.jsonl", out=out, model="tiny", seed=0,
             batch_size=6, device="cpu", references=[tmp_path / "eval.jsonl"], progress=False,
             data_value_eval=tmp_path / "eval.jsonl")
    result = json.loads((out / "data_value" / "data_value.json").read_text())
    accepted = (out / "accepted.jsonl").read_text().splitlines()
    assert result["inputs"]["synthetic"] == str(out / "accepted.jsonl")
    assert result["counts"]["synthetic"] == len(accepted)
    assert set(result["by_lang"]) == {"en"}  # the run's language only
    assert result["by_lang"]["en"]["n"]["eval"] == sum(1 for r in held if r.lang == "en")
    assert (out / "data_value" / "report.md").read_text().startswith("# Data value: fin_sentiment")


def test_a_missing_data_value_file_fails_before_generating(tmp_path):
    done = subprocess.run([PY, "generate.py", "--task", "fin_sentiment", "--lang", "en", "--n", "2", "--model", "tiny", "--seeds",
                           "data/samples/fin_sentiment/en.jsonl", "--out", str(tmp_path / "run"), "--data-value",
                           str(tmp_path / "nope.jsonl")], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert f"--data-value {tmp_path / 'nope.jsonl'}: file not found" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
