"""The `openai` backend against tests/fakes/metering_proxy.py, a FAKE metering proxy on loopback (HTTP 402,
429, 500, answers without logprobs): every failure is a recorded reason, never a traceback, and the spend
cap holds across a kill and a resume. The happy path runs against `transformers serve` (test_openai_backend.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from backends import FailedScores, Sampling, get_backend, score_failure
from core.errors import UserError
from core.records import Record
from tests.cli_helpers import PY, REPO, child_env
from tests.fakes.metering_proxy import MeteringProxy

CHOICES = ["positive", "negative", "neutral"]


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def _backend(proxy, **options):
    return get_backend("openai", model=options.pop("model", "gpt-4o-mini"), base_url=proxy.base_url, **options)


@pytest.mark.parametrize("mode", ["402", "429", "500"])
def test_http_errors_become_reasons_in_generate_and_score(mode):
    with MeteringProxy(mode) as proxy:
        backend = _backend(proxy, max_retries=1)
        out = backend.generate(["a", "b"], None, Sampling(max_new_tokens=8))
        rows = backend.score(["a", "b"], CHOICES)
    assert all(c.error.startswith(f"API error {mode}") and c.finish_reason == "error" for c in out)
    assert all(isinstance(r, FailedScores) and score_failure(r).startswith(f"API error {mode}") for r in rows)
    assert backend.total_spent_usd == 0.0  # refused requests cost nothing


def test_a_server_without_logprobs_is_asked_once_then_every_row_carries_the_reason():
    with MeteringProxy("nologprobs") as proxy:
        backend = _backend(proxy)
        backend.concurrency = 1
        rows = backend.score(["a", "b", "c"], CHOICES)
        asked = len(proxy.requests)
    assert [score_failure(r) for r in rows] == ["server returned no logprobs"] * 3
    assert asked == 1
    assert proxy.requests[0]["logprobs"] is True and proxy.requests[0]["max_tokens"] == 1


def test_self_consistency_gives_unscored_rows_a_verdict_with_the_reason_not_a_crash():
    from core.tasks import load_task
    from validators.base import Context
    from validators.self_consistency import SelfConsistencyValidator

    task = load_task("fin_sentiment")
    records = [Record.new(task=task.name, lang="en", text=f"Bank shares rose {i}%", labels={"label": "positive"})
               for i in range(3)]
    with MeteringProxy("402") as proxy:
        validator = SelfConsistencyValidator(task, {"k": 3}, Context(backend=_backend(proxy), seed=0))
        verdicts = validator.check(records)
    assert len(verdicts) == 3
    for verdict in verdicts:
        assert not verdict.passed and verdict.details["rule"] == "unscored"
        assert "API error 402" in verdict.reason and verdict.details["claimed"] == "positive"


def test_spend_cap_stops_requests_before_they_are_sent_in_score_and_generate():
    with MeteringProxy("nologprobs") as proxy:
        backend = _backend(proxy, max_cost_usd=0.0)
        rows = backend.score(["a"], CHOICES)
        out = backend.generate(["a"], None, Sampling())
        assert proxy.requests == []
    assert score_failure(rows[0]) == "spend cap reached"
    assert out[0].error == "spend cap reached" and out[0].extra["spend_cap"]


def test_an_unpriced_model_is_refused_under_a_cap_and_priced_with_price_per_1k():
    with MeteringProxy("nologprobs") as proxy:
        with pytest.raises(UserError, match=r"'my-local-model' has no price.*--price-per-1k"):
            _backend(proxy, model="my-local-model", max_cost_usd=1.0)
        backend = _backend(proxy, model="my-local-model", max_cost_usd=1.0, price_per_1k=(1.0, 1.0))
        assert backend.generate(["hi"], None, Sampling(max_new_tokens=8))[0].ok
    assert backend.total_spent_usd == pytest.approx(proxy.billed_usd) == pytest.approx(0.15)


def test_the_ledger_survives_the_process_and_counts_unsettled_reservations(tmp_path):
    ledger = tmp_path / "spend.jsonl"
    with MeteringProxy("nologprobs") as proxy:
        first = _backend(proxy, model="m", price_per_1k=(1.0, 1.0), ledger=ledger, max_cost_usd=10.0)
        first.generate(["a", "b"], None, Sampling(max_new_tokens=8))
        first.close()
    assert first.total_spent_usd == pytest.approx(0.3)
    # A request in flight when the process died: reserved, never settled; a resumed run counts it in full.
    with ledger.open("a") as handle:
        handle.write(json.dumps({"reserve": "lost", "usd": 0.5}) + "\n" + '{"settle": "lo')  # cut mid-line
    with MeteringProxy("nologprobs") as proxy:
        again = _backend(proxy, model="m", price_per_1k=(1.0, 1.0), ledger=ledger, max_cost_usd=10.0)
    assert again.spent_before == pytest.approx(0.8)


def _generate_cli(proxy, out, *extra):
    return [PY, "generate.py", "--task", "fin_sentiment", "--lang", "en", "--backend", "openai", "--out", str(out),
            "--quiet", "--max-new-tokens", "50", "--batch-size", "4", *extra]


def test_cli_against_402_exits_0_keeps_every_row_with_its_reason(seeds_file, tmp_path):
    out = tmp_path / "402"
    with MeteringProxy("402") as proxy:
        args = [*_generate_cli(proxy, out, "--n", "5", "--seeds", str(seeds_file), "--model", "gpt-4o-mini",
                               "--max-cost-usd", "0.5")]
        result = subprocess.run(args, cwd=REPO, env=child_env(OPENAI_BASE_URL=proxy.base_url, OPENAI_API_KEY="sk-x"),
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(r["provenance"]["index"] for r in rows) == list(range(5))
    assert all(r["provenance"]["error"].startswith("API error 402: Payment required") for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["cost_usd"] == 0.0
    assert manifest["counts"]["errors"] == {"API error 402": 5}


def test_spend_never_exceeds_the_cap_across_a_kill_and_a_resume(seeds_file, tmp_path):
    """The proxy's own bill (what it answered) and the run's recorded spend both stay under --max-cost-usd."""
    # A request reserves its most (prompt bytes + max tokens: about 1 USD here) and settles at its usage
    # (0.15 USD): a kill leaves in-flight reservations counted in full, so the cap stays a hard bound.
    out, cap = tmp_path / "capped", 8.0
    with MeteringProxy("nologprobs", delay_s=0.3) as proxy:
        env = child_env(OPENAI_BASE_URL=proxy.base_url, OPENAI_API_KEY="sk-x")
        args = _generate_cli(proxy, out, "--n", "40", "--seeds", str(seeds_file), "--model", "metered-model",
                             "--price-per-1k", "1,1", "--max-cost-usd", str(cap), "--no-validate")
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        samples = out / "samples.jsonl"
        while time.time() < deadline and proc.poll() is None:
            if samples.exists() and len(samples.read_bytes().splitlines()) >= 4 and proxy.answered >= 5:
                break  # the first batch is written, the second is in flight
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)  # mid-batch: requests in flight
        proc.wait()
        billed_before = proxy.billed_usd
        resumed = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        billed = proxy.billed_usd
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and "spend cap" in manifest["stop_reason"]
    assert billed > billed_before > 0  # both sessions spent
    assert billed <= cap and manifest["cost_usd"] <= cap
    assert manifest["cost_usd"] >= billed - 1e-9  # the record never forgets what the server billed
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert 0 < len(rows) < 40 and len({r["provenance"]["index"] for r in rows}) == len(rows)


def test_choices_after_an_answer_start_are_refused_without_a_request():
    """A chat API cannot be made to continue from '{"label": "': every row says so, and nothing is sent."""
    with MeteringProxy("nologprobs") as proxy:
        rows = _backend(proxy).score(["a", "b"], CHOICES, before='{"label": "', after='"}')
        asked = len(proxy.requests)
    assert all("not a choice after" in score_failure(r) for r in rows) and asked == 0
