"""`python demo.py` end to end on the sample files: every stage runs, summary.json is complete,
and a second run reuses every finished stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

STAGES = ["data", "generate", "review", "export", "train", "evaluate", "ablation_train", "ablation_evaluate",
          "ablation_seed_train", "ablation_seed_evaluate", "data_value"]


def run_demo(repo, out, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "demo.py", "--out", str(out), "--source", "data/samples", "--n-synthetic", "6",
           "--model", "tiny", "--train-per-lang", "30", "--eval-per-lang", "8", "--max-steps", "2", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           **(env or {})}
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env, timeout=600)


def test_demo_runs_every_stage_then_reuses_them(repo, tmp_path):
    out = tmp_path / "demo"
    first = run_demo(repo, out)
    assert first.returncode == 0, first.stderr[-3000:]
    for k, _ in enumerate(STAGES, 1):
        assert f"== [{k}/{len(STAGES)}]" in first.stdout
    assert "DEMO ONLY: UNATTENDED REVIEW BY REVIEWER 'auto'" in first.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["train"] == 60 and summary["data"]["eval"] == 16
    assert summary["synthetic"]["generated"] == 6
    cost = summary["synthetic"]["cost"]  # the run's usage table: generation and each validator that used a model
    assert cost["stages"]["generation"]["calls"] == 6 and cost["total"]["cost_usd"] == 0.0
    assert "cost      " in first.stdout and "generation " in first.stdout and "prices as of" in first.stdout
    review = summary["review"]
    assert review["reviewer"] == "auto"
    assert review["approved"] + review["rejected"] == summary["synthetic"]["queued"]
    assert summary["export"]["records"] == review["approved"]
    assert summary["train"]["records"] == 60 + review["approved"]
    for model in ("base", "tuned"):
        assert 0.0 <= summary["eval"][model]["accuracy"] <= 1.0
        assert set(summary["eval"][model]["by_lang"]) == {"en", "vi"}
    assert 0.0 <= summary["eval"]["paired"]["by_lang"]["en"]["mcnemar_p"] <= 1.0
    assert "accuracy_delta" in summary["ablation"]["comparison"]
    assert "accuracy_delta" in summary["ablation"]["seed_control"]["comparison"]
    for path in summary["artifacts"].values():
        assert path is None or os.path.exists(path), path
    assert summary["review_app"] == f"streamlit run review_app/app.py -- --db {out / 'synthetic' / 'review.db'}"
    assert set(summary["stages"]) == set(STAGES) and not any(s["reused"] for s in summary["stages"].values())

    # Every decision of the unattended step is in the review database's log, by reviewer 'auto'.
    from review_app.store import ReviewStore

    store = ReviewStore(out / "synthetic" / "review.db")
    try:
        log = store.decision_log()
    finally:
        store.close()
    assert len(log) == summary["synthetic"]["queued"] and {d["annotator"] for d in log} <= {"auto"}

    second = run_demo(repo, out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("reused") >= len(STAGES)
    again = json.loads((out / "summary.json").read_text())
    assert all(s["reused"] for s in again["stages"].values())
    assert again["eval"] == summary["eval"]


def test_demo_rejects_a_missing_source(repo, tmp_path):
    result = subprocess.run([sys.executable, "demo.py", "--out", str(tmp_path), "--source", "no/such/dir"],
                            cwd=repo, capture_output=True, text=True)
    assert result.returncode == 2
    assert "no/such/dir" in result.stderr and "Traceback" not in result.stderr


def test_human_review_mode_waits_for_people_then_goes_on(repo, tmp_path):
    """--human-review stops after the queue is filled; decisions made through the store let it finish."""
    from review_app.store import ReviewStore

    out = tmp_path / "human"
    first = run_demo(repo, out, "--human-review", "--no-ablation")
    assert first.returncode == 0, first.stderr[-2000:]
    db = out / "synthetic" / "review.db"
    if not db.is_file():
        pytest.skip("no sample passed the validators in this tiny run, so nothing was queued")
    assert "streamlit run review_app/app.py -- --db" in first.stdout
    assert not (out / "summary.json").exists()
    store = ReviewStore(db)
    try:
        while (item := store.claim("alice")) is not None:
            store.decide(item.id, "alice", "approve", reason="looks right")
    finally:
        store.close()
    second = run_demo(repo, out, "--human-review", "--no-ablation")
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["review"]["reviewer"] == "people"
    assert summary["export"]["records"] == summary["review"]["approved"] > 0


@pytest.mark.slow
def test_full_vllm_demo_path_runs_every_stage_on_the_fake_vllm(repo, tmp_path):
    """`demo.py --full --backend vllm` end to end with tests/fakes/fake_vllm standing in for vLLM (no GPU
    here): generation, self-consistency and every evaluation run through one engine at a time, and base and
    tuned are served by one engine, the tuned calls carrying a LoRARequest for the trained adapter."""
    from tests.fakes import fake_vllm_path

    out, log = tmp_path / "vllm", tmp_path / "fake_vllm.jsonl"
    env = {"PYTHONPATH": f"{fake_vllm_path()}{os.pathsep}{repo}", "FAKE_VLLM_LOG": str(log)}
    result = run_demo(repo, out, "--full", "--backend", "vllm", "--model", "tiny", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "vllm" and set(summary["stages"]) == set(STAGES)
    assert summary["synthetic"]["generated"] == 6 and summary["synthetic"]["parsed"] == 6
    for model in ("base", "tuned"):
        assert 0.0 <= summary["eval"][model]["accuracy"] <= 1.0

    events = [json.loads(line) for line in log.read_text().splitlines()]
    inits = [e for e in events if e["event"] == "init"]
    calls = [e for e in events if e["event"] == "generate"]
    # Generation (structured outputs, one seed per sample) and self-consistency on a plain engine, then
    # one LoRA engine for all three evaluations.
    assert len(inits) == 2 and "enable_lora" not in inits[0] and inits[1]["enable_lora"] is True
    generation = [c for c in calls if c["engine"] == inits[0]["engine"] and c["structured"] == [True]]
    seeds = [s for c in generation for s in c["seeds"]]
    assert sorted(seeds) == list(range(6))  # run seed 0: sample i's seed is i
    adapters = {str((out / p).resolve()) for p in ("adapter", "ablation/adapter", "ablation/adapter_seed2")}
    evaluation = [c for c in calls if c["engine"] == inits[1]["engine"]]
    served = {path for c in evaluation for path in c["lora"]}
    assert served == {"", *adapters}  # base requests without an adapter, each tuned one with its own
    assert all(c["double_bos"] == 0 and c["prompt_kind"] == ["tokens"] for c in calls)
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert not config.get("modules_to_save")  # vLLM serves LoRA weights only
