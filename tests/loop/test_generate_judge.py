"""`generate.py` with the LLM judge: thresholds calibrated from a review database, its mode, and the judge's
model, thresholds and tokens recorded in the manifest's usage table, a row beside generation's."""

from __future__ import annotations

import json
import subprocess

from tests.cli_helpers import PY, REPO, child_env
from tests.review_app.test_calibration import PLAN, judged_db


def _task_with_schema_and_judge(tmp_path):
    """fin_sentiment with a chain of schema and the judge only: the tiny model's noise reaches the judge."""
    text = (REPO / "tasks" / "fin_sentiment.yaml").read_text(encoding="utf-8")
    path = tmp_path / "fin_judge.yaml"
    path.write_text(text.split("\nvalidators:\n")[0] + "\nvalidators:\n  - name: schema\n  - name: judge\n"
                    "    enabled: false\n", encoding="utf-8")
    return path


def _generate(tmp_path, seeds_file, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "generate.py", "--task", str(_task_with_schema_and_judge(tmp_path)), "--lang", "en", "--n", "3",
         "--model", "tiny", "--seeds", str(seeds_file), "--out", str(tmp_path / "run"), "--quiet", "--no-review",
         "--batch-size", "3", *flags],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300)


def test_generate_judges_with_calibrated_thresholds_and_records_its_cost(tmp_path, seeds_file):
    db = judged_db(tmp_path / "review.db")
    done = _generate(tmp_path, seeds_file, "--judge-calibrated-from", str(db), "--judge-mode", "flag")
    assert done.returncode == 0, done.stderr
    assert f"judge thresholds from {db} (24 review decisions): " in done.stdout and "label_right >= 3" in done.stdout
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "judge" not in manifest  # one shape: the judge is a row of the usage table, beside generation's
    row = manifest["usage"]["stages"]["judge"]
    judge = row["details"]
    assert judge["calibrated_from"]["source"] == str(db) and judge["thresholds"]["label_right"] == 3
    assert judge["thresholds"] == judge["calibrated_from"]["thresholds"]
    assert row["model"] == "tiny" and row["backend"] == "transformers" and row["cost_sources"] == {"local": 3}
    assert judge["checked"] == judge["records"] == row["calls"] == 3 and judge["parsed"] == 3
    assert judge["mode"] == "flag" and judge["rejected"] == 0  # flag: recorded, nothing rejected
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["seconds"] > 0
    assert manifest["usage"]["stages"]["generation"]["completion_tokens"] == manifest["counts"]["tokens"]["completion"] > 0
    validated = [json.loads(line) for name in ("accepted.jsonl", "rejected.jsonl")
                 for line in (tmp_path / "run" / name).read_text().splitlines()]
    verdicts = [v for r in validated for v in r["verdicts"] if v["name"] == "judge"]
    assert len(verdicts) == 3 and all(v["details"]["thresholds"]["label_right"] == 3 for v in verdicts)


def test_too_small_a_review_database_or_no_validators_stop_before_generating(tmp_path, seeds_file):
    small = judged_db(tmp_path / "small.db", plan=PLAN[:4], split=False)
    done = _generate(tmp_path, seeds_file, "--judge-calibrated-from", str(small))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "4 independent review decisions on items the judge scored" in done.stderr
    assert not (tmp_path / "run").exists()
    done = _generate(tmp_path, seeds_file, "--judge", "--no-validate")
    assert done.returncode == 2 and "--judge runs with the validators: drop --no-validate" in done.stderr
