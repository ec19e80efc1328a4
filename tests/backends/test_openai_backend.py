"""The `openai` backend against a real OpenAI-compatible server on loopback (`transformers serve`).

`transformers serve` ignores `response_format`, so its (tiny-model) answers are noise: exactly the
case the backend's parse-validate-retry path exists for. Skipped where FastAPI (the server's
`transformers[serving]` extra) is missing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from backends import Sampling
from tests.cli_helpers import PY, REPO, child_env

pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_path):
    port = _free_port()
    proc = subprocess.Popen([str(Path(PY).parent / "transformers"), "serve", "--device", "cpu",
                             "--host", "127.0.0.1", "--port", str(port), str(tiny_path)],
                            env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("transformers serve did not start")
            time.sleep(0.5)
    yield {"base_url": f"{url}/v1", "model": str(tiny_path)}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_generate_parses_validates_retries_and_counts_tokens(server, monkeypatch):
    from backends import get_backend
    from core.tasks import load_task

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = get_backend("openai", model=server["model"], base_url=server["base_url"], parse_retries=1,
                          price_per_1k=(0.5, 1.0))
    schema = load_task("fin_sentiment").generation_schema()
    out = backend.generate(["Write a financial headline as JSON.", [{"role": "user", "content": "Hi"}]],
                           schema, Sampling(max_new_tokens=8))
    assert len(out) == 2
    for completion in out:  # noise never parses: kept with its reason after 1 + 1 attempts
        assert completion.error and completion.parsed is None and completion.extra["attempts"] == 2
        assert completion.prompt_tokens > 0 and 0 < completion.completion_tokens <= 16
    assert backend.requests == 4
    expected = backend.prompt_tokens / 1000 * 0.5 + backend.completion_tokens / 1000 * 1.0
    assert backend.cost_usd == pytest.approx(expected)
    free = backend.generate(["Say hello"], None, Sampling(max_new_tokens=5))[0]
    assert free.ok and free.text and free.completion_tokens == 5


def test_api_errors_become_error_rows(server):
    from backends import get_backend

    wrong = get_backend("openai", model=server["model"], base_url=server["base_url"] + "/nowhere")
    completion = wrong.generate(["hi"], None, Sampling(max_new_tokens=4))[0]
    assert completion.error.startswith("API error 404") and completion.finish_reason == "error"


def test_cli_stops_cleanly_at_the_spend_cap_and_never_logs_the_key(server, seeds_file, tmp_path):
    secret = "sk-test-SECRET-never-printed"
    out = tmp_path / "api"
    args = [PY, "generate.py", "--task", "fin_sentiment", "--lang", "en", "--n", "6", "--backend", "openai",
            "--model", server["model"], "--seeds", str(seeds_file), "--out", str(out), "--no-validate",
            "--max-new-tokens", "8", "--batch-size", "2", "--max-cost-usd", "0.02", "--price-per-1k", "0.01,0.01"]
    env = child_env(OPENAI_API_KEY=secret, OPENAI_BASE_URL=server["base_url"])
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and "spend cap" in manifest["stop_reason"]
    assert 0 < manifest["cost_usd"] <= 0.02  # each request reserved its most before it was sent
    written = (out / "samples.jsonl").read_text()
    assert 0 < len(written.splitlines()) < 6
    for text in (result.stdout, result.stderr, written, json.dumps(manifest)):
        assert secret not in text


def test_score_on_a_real_server_gives_log_probs_or_the_reason(server):
    """`transformers serve` is the real server here: its rows are finite log-probs where it returns logprobs,
    else every row says why; self-consistency on them never crashes (see test_openai_failures.py)."""
    from backends import get_backend, score_failure

    backend = get_backend("openai", model=server["model"], base_url=server["base_url"])
    rows = backend.score(["The bank's profit rose.", "Shares fell."], ["positive", "negative", "neutral"])
    assert len(rows) == 2 and all(len(r) == 3 for r in rows)
    reasons = [score_failure(r) for r in rows]
    assert all(r is None for r in reasons) or all(r for r in reasons), reasons
    print("transformers serve score():", reasons)


def test_the_judge_on_a_server_that_ignores_the_schema_keeps_every_sample_with_a_reason(server, monkeypatch):
    """`transformers serve` drops `response_format`: the tiny model's free text is no verdict. The judge
    still gives every sample a verdict, none rejected, each unread answer with its reason."""
    from backends import get_backend
    from core.records import Record
    from core.tasks import load_task
    from validators.base import Context, build

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    task = load_task("fin_sentiment")
    backend = get_backend("openai", model=server["model"], base_url=server["base_url"], parse_retries=1)
    judge = build("judge", task, {"max_new_tokens": 24}, Context(judge_backend=backend))
    records = [Record.new(task=task.name, lang="en", text=t, labels={"label": "positive"})
               for t in ("Profit rose 5%.", "Shares fell after the warning.")]
    verdicts = judge.check(records)
    assert len(verdicts) == 2 and all(v.passed for v in verdicts)
    for v in verdicts:
        assert v.details["parsed"] or (v.details["rule"] == "unparsed" and v.reason.startswith("judge: no verdict"))
    assert judge.usage["parsed"] + judge.usage["unparsed"] == 2 and judge.usage["tokens"]["completion"] > 0
    print("judge on transformers serve:", judge.usage, [v.reason for v in verdicts])
