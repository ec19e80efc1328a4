"""`generate.py` end to end on the tiny model: every sample parses, provenance is filled, runs resume."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from core.errors import UserError
from generate import main
from tests.cli_helpers import PY, REPO, child_env


def _rows(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "generate.py", *args], cwd=REPO, env=child_env(), capture_output=True,
                          text=True, timeout=300, **kwargs)


def _kill_after_lines(args: list[str], samples, lines: int) -> None:
    """Start `generate.py args`, SIGKILL it once `samples` holds `lines` lines (mid-run, for real)."""
    proc = subprocess.Popen([PY, "generate.py", *args], cwd=REPO, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400  # generous: a loaded machine or a cold Ray start takes minutes
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and len(samples.read_bytes().splitlines()) >= lines:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_constrained_run_parses_every_sample_and_resumes_without_duplicates(seeds_file, tmp_path):
    out = tmp_path / "run"
    args = ["--task", "fin_sentiment", "--lang", "en", "--n", "6", "--model", "tiny", "--seeds", str(seeds_file),
            "--out", str(out), "--no-validate", "--quiet", "--batch-size", "6", "--temperature-mix", "0.7,1.0"]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    assert "diversity:" in first.stdout
    rows = _rows(out)
    assert len(rows) == 6 and sorted(r["provenance"]["index"] for r in rows) == list(range(6))
    for row in rows:
        prov = row["provenance"]
        assert "error" not in prov, prov.get("error")
        assert row["text"] and row["labels"]["label"] in {"positive", "negative", "neutral"}
        assert row["source"] == "synthetic"
        assert prov["seed_ids"] and prov["template_id"] and prov["attributes"] and prov["prompt"]
        assert prov["model"] == "tiny" and prov["sampling"]["strategy"].startswith("mix(")
        assert prov["tokens"]["completion"] > 0 and prov["finish_reason"] == "stop"
        assert prov.get("label_mismatch", False) == (row["labels"]["label"] != prov["target_label"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["parsed"] == 6
    assert manifest["counts"]["tokens"]["completion"] == sum(r["provenance"]["tokens"]["completion"] for r in rows)
    assert manifest["versions"]["outlines"] and manifest["diversity"]["attribute_combinations"] == 6

    # Same command again: nothing to do, nothing duplicated. A larger n extends the same run.
    assert main(args) == 0
    assert len(_rows(out)) == 6
    # A different config in the same folder is refused with the differing key named.
    with pytest.raises(UserError, match=r"different config \(plan.seed"):
        main([*args, "--seed", "1"])


def test_sigkill_mid_run_then_rerun_gives_exactly_n_distinct_samples(seeds_file, tmp_path):
    out = tmp_path / "killed"
    # A tiny token budget keeps this fast: rows cut at the budget are still written (with their error),
    # which is all the resume logic needs.
    args = ["--task", "fin_sentiment", "--lang", "en", "--n", "14", "--model", "tiny", "--seeds", str(seeds_file), "--out", str(out),
            "--no-validate", "--quiet", "--batch-size", "2", "--max-new-tokens", "12"]
    samples = out / "samples.jsonl"
    _kill_after_lines(args, samples, 4)
    written = len(_rows(out)) if samples.read_bytes().endswith(b"\n") else None
    assert written is None or written < 14

    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    rows = _rows(out)
    assert len(rows) == 14
    assert sorted(r["provenance"]["index"] for r in rows) == list(range(14))
    assert json.loads((out / "manifest.json").read_text())["counts"]["samples"] == 14


@pytest.mark.parametrize(("change", "message"), [
    ({"--task": "nope"}, "unknown task 'nope'"),
    ({"--backend": "nope"}, "unknown backend 'nope'"),
    ({"--n": "0"}, "--n must be a positive number"),
    ({"--seeds": "missing.jsonl"}, "missing.jsonl: seed file not found"),
])
def test_bad_input_is_one_clear_line(seeds_file, tmp_path, change, message):
    args = {"--task": "fin_sentiment", "--lang": "en", "--n": "5", "--model": "tiny", "--seeds": str(seeds_file),
            "--out": str(tmp_path / "o")}
    args.update(change)
    result = _cli(*[x for kv in args.items() for x in kv])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def _by_index(out):
    return {r["provenance"]["index"]: (r["id"], r["text"], r["provenance"].get("raw_output"),
                                       r["provenance"]["sampling"]["seed"]) for r in _rows(out)}


def test_a_killed_and_resumed_run_draws_the_same_samples_as_an_uninterrupted_one(seeds_file, tmp_path):
    """Sample i's randomness is a function of (run seed, i): neither a SIGKILL + resume nor another batch size
    changes what it draws; and samples of one prompt (--samples-per-prompt 2) differ."""
    common = ["--task", "fin_sentiment", "--lang", "en", "--n", "10", "--model", "tiny", "--seeds", str(seeds_file), "--no-validate",
              "--quiet", "--no-constrain", "--max-new-tokens", "12", "--temperature", "1.0",
              "--samples-per-prompt", "2", "--seed", "3"]
    whole = tmp_path / "whole"
    assert _cli(*common, "--out", str(whole), "--batch-size", "3").returncode == 0

    killed = tmp_path / "killed"
    args = [*common, "--out", str(killed), "--batch-size", "2"]
    samples = killed / "samples.jsonl"
    _kill_after_lines(args, samples, 2)
    assert 2 <= len(samples.read_bytes().splitlines()) < 10
    assert _cli(*args).returncode == 0

    expected, resumed = _by_index(whole), _by_index(killed)
    assert sorted(resumed) == list(range(10)) and resumed == expected
    assert [expected[i][3] for i in range(10)] == [3_000_000 + i for i in range(10)]
    # Two samples of the same prompt are two different draws.
    raws = [expected[i][2] or expected[i][1] for i in range(10)]
    assert all(raws[2 * p] != raws[2 * p + 1] for p in range(5)), raws
