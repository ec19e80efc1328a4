"""`generate.py --accepted N` on the tiny model with a planted validator (a TEST DOUBLE passing one sample in
three, tests/generator/doubles.py): N accepted within the label quotas, rounds sized from the rate, resumable
after a SIGKILL, `--max-candidates` spent gives the partial set and one line, Ctrl-C keeps everything."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter

import pytest

from tests.cli_helpers import PY, REPO, child_env
from tests.generator.doubles import LAUNCH, planted_task


def _args(task: str, seeds, out, *extra: str) -> list[str]:
    return ["--task", task, "--lang", "en", "--model", "tiny", "--seeds", str(seeds), "--out", str(out),
            "--quiet", "--no-review", "--batch-size", "8", *extra]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", LAUNCH, *args], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=600)


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, seeds_file):
    """One uninterrupted `--accepted 10` run with the planted one-in-three validator."""
    folder = tmp_path_factory.mktemp("accepted")
    task = planted_task(folder)
    out = folder / "run"
    # The tiny model writes random labels, so how many passes land on a full quota depends on its draw (its
    # tokenizer is trained on the task files: any task edit redraws it); 100 candidates leave room for that.
    done = _run(_args(task, seeds_file, out, "--accepted", "10", "--max-candidates", "100"))
    assert done.returncode == 0, done.stderr[-3000:]
    return task, out, done


def test_accepted_10_at_one_in_three_ends_with_10_within_the_quotas_and_about_30_candidates(reference_run):
    _, out, done = reference_run
    accepted = _lines(out / "accepted.jsonl")
    samples = _lines(out / "samples.jsonl")
    assert len(accepted) == 10
    assert Counter(r["labels"]["label"] for r in accepted) == {"positive": 4, "negative": 3, "neutral": 3}
    assert all(r["provenance"]["index"] % 3 == 0 for r in accepted)  # the double's pick, nothing else
    indices = [r["provenance"]["index"] for r in samples]
    assert sorted(indices) == list(range(len(samples)))  # no duplicate, no gap
    # ~30: 1 in 3 pass, and the tiny model writes random labels, so some that pass land on a full quota:
    # every pass beyond the 10 is in rejected.jsonl with its quota verdict, none lost.
    assert 30 <= len(samples) <= 100
    over_quota = [r for r in _lines(out / "rejected.jsonl")
                  if any(v["name"] == "quota" and not v["passed"] for v in r.get("verdicts", []))]
    assert len(over_quota) == (len(samples) + 2) // 3 - 10
    manifest = json.loads((out / "manifest.json").read_text())
    acceptance = manifest["acceptance"]
    assert manifest["status"] == "complete" and acceptance["accepted"] == 10
    assert acceptance["candidates"] == len(samples) and acceptance["passed"] == (len(samples) + 2) // 3
    rounds = acceptance["rounds"]
    assert len(rounds) >= 2 and rounds[0]["end"] - rounds[0]["start"] == 10  # the first round: N
    assert all(r["status"] == "done" for r in rounds) and rounds[-1]["end"] == len(samples)
    assert rounds[0]["weights"] is None and rounds[1]["weights"]["source"] == "acceptance in this run"
    assert sum(v["candidates"] for v in acceptance["by_template"].values()) == len(samples)
    assert set(acceptance["by_attribute"]) >= {"sector", "event"}
    # Round 2 aims its prompts at the labels still short of their quota, as the plan recorded.
    targets = {int(k): v for k, v in rounds[1]["targets"].items()}
    assert all(samples[i]["provenance"]["target_label"] == targets[i] for i in targets)
    # The usage table adds up to its total, and the one line says how many of N and the rate.
    usage = manifest["usage"]
    for key in ("calls", "prompt_tokens", "completion_tokens", "texts"):
        assert usage["total"][key] == sum(row[key] for row in usage["stages"].values())
    gen = usage["stages"]["generation"]
    assert gen["calls"] == len(samples) and gen["completion_tokens"] == manifest["counts"]["tokens"]["completion"]
    assert gen["cost_sources"] == {"local": len(samples)} and gen["cost_usd"] == 0.0
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith(f"accepted 10 of 10: {len(samples)} candidates in {len(rounds)} rounds, "
                           f"{acceptance['passed']} passed the validators (acceptance "), line
    assert "usage per stage" in done.stdout and "generation" in done.stdout


def _kill_after(args: list[str], path, lines: int, sig: int) -> subprocess.Popen:
    proc = subprocess.Popen([PY, "-c", LAUNCH, *args], cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_bytes().splitlines()) >= lines:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be stopped"
    proc.send_signal(sig)
    return proc


def test_a_run_killed_in_its_second_round_and_run_again_reaches_the_same_10(reference_run, tmp_path, seeds_file):
    task, reference, _ = reference_run
    out = tmp_path / "killed"
    args = _args(task, seeds_file, out, "--accepted", "10", "--max-candidates", "100")  # as the reference run
    proc = _kill_after(args, out / "samples.jsonl", 13, signal.SIGKILL)  # round 1 (10) validated, round 2 going
    proc.wait()
    assert json.loads((out / "manifest.json").read_text())["acceptance"]["rounds"][0]["status"] == "done"
    again = _run(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["id"] for r in _lines(out / "accepted.jsonl")] == [r["id"] for r in _lines(reference / "accepted.jsonl")]
    samples = _lines(out / "samples.jsonl")
    assert len({r["provenance"]["index"] for r in samples}) == len(samples) == len(_lines(reference / "samples.jsonl"))
    validated = _lines(out / "validated.jsonl")
    assert len({r["id"] for r in validated}) == len(validated)  # every candidate validated once
    # The same command once more: nothing left to do, the same 10.
    assert _run(args).returncode == 0 and len(_lines(out / "accepted.jsonl")) == 10


def test_max_candidates_spent_gives_the_partial_set_and_one_line_and_fail_exits_2(tmp_path, seeds_file):
    task = planted_task(tmp_path)
    out = tmp_path / "spent"
    args = _args(task, seeds_file, out, "--accepted", "10", "--max-candidates", "12")
    done = _run(args)
    assert done.returncode == 0, done.stderr[-3000:]
    accepted = _lines(out / "accepted.jsonl")
    assert len(_lines(out / "samples.jsonl")) == 12 and 1 <= len(accepted) <= 4
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith(f"accepted {len(accepted)} of 10: --max-candidates 12 spent; 12 candidates in ")
    assert "4 passed the validators (acceptance 33%)" in line and "larger --max-candidates" in line
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "exhausted" and manifest["acceptance"]["accepted"] == len(accepted)
    failed = _run([*args, "--on-exhausted", "fail"])  # nothing left to spend: the same line, as an error
    assert failed.returncode == 2 and failed.stderr.strip().splitlines()[-1] == f"error: {line}"
    assert "Traceback" not in failed.stderr


def test_ctrl_c_writes_samples_verdicts_counts_and_cost_and_says_how_to_resume(tmp_path, seeds_file):
    task = planted_task(tmp_path)
    out = tmp_path / "interrupted"
    args = _args(task, seeds_file, out, "--accepted", "6", "--max-candidates", "90")
    proc = _kill_after(args, out / "validated.jsonl", 6, signal.SIGINT)  # round 1 done, round 2 under way
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    message = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(message) == 1 and "of 6 accepted" in message[0] and f"resume with: python generate.py --task {task}" \
        in message[0], stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["counts"]["samples"] == len(_lines(out / "samples.jsonl")) >= 6
    assert manifest["usage"]["stages"]["generation"]["calls"] >= 6 and manifest["acceptance"]["rounds"][0]["status"] == "done"
    assert (out / "accepted.jsonl").is_file() and (out / "rejected.jsonl").is_file()
    again = _run(args)
    assert again.returncode == 0 and len(_lines(out / "accepted.jsonl")) == 6
