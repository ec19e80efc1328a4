"""The usage table of a run on an API, against tests/fakes/metering_proxy.py (a FAKE metering proxy on loopback
that keeps its own bill): per stage the calls, tokens and dollars are what the server reported, and a model
without a price says so instead of costing $0."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli_helpers import PY, REPO, child_env
from tests.fakes.metering_proxy import MeteringProxy


def _generate(proxy, seeds_file, out, *extra: str) -> subprocess.CompletedProcess:
    args = [PY, "generate.py", "--task", "fin_sentiment", "--lang", "en", "--backend", "openai", "--out", str(out),
            "--seeds", str(seeds_file), "--quiet", "--no-review", "--max-new-tokens", "50", "--batch-size", "4", *extra]
    return subprocess.run(args, cwd=REPO, env=child_env(OPENAI_BASE_URL=proxy.base_url, OPENAI_API_KEY="sk-x"),
                          capture_output=True, text=True, timeout=300)


def test_the_cost_per_stage_is_what_the_server_reported_and_adds_up_to_its_bill(seeds_file, tmp_path):
    # The server reports each answer's cost (usage.cost) at 1 USD per 1k tokens, far above the table's price of
    # gpt-4o-mini: the run takes the server's number. Three identical answers: two are near duplicates, the
    # third reaches self-consistency, whose scoring requests are answered (billed) without logprobs.
    with MeteringProxy("nologprobs", report_cost=True) as proxy:
        done = _generate(proxy, seeds_file, tmp_path / "run", "--n", "3", "--model", "gpt-4o-mini")
        billed, answered = proxy.billed_usd, proxy.answered
    assert done.returncode == 0, done.stderr[-2000:]
    usage = json.loads((tmp_path / "run" / "manifest.json").read_text())["usage"]
    gen, votes = usage["stages"]["generation"], usage["stages"]["self_consistency"]
    assert gen["calls"] == 3 and gen["prompt_tokens"] == 300 and gen["completion_tokens"] == 150
    assert gen["cost_sources"] == {"server": 3} and gen["cost_usd"] == pytest.approx(3 * 0.15)
    # Its scoring requests in flight before the first answer showed no logprobs were answered and billed too.
    assert votes["calls"] >= 1 and votes["cost_sources"] == {"server": votes["calls"]} and votes["failures"] >= 1
    assert votes["cost_usd"] == pytest.approx(0.15 * votes["calls"])
    assert gen["calls"] + votes["calls"] == answered  # the other rows are the local encoder's
    assert usage["total"]["cost_usd"] == pytest.approx(billed)
    assert usage["prices"]["as_of"] and "$0.450000" in done.stdout


def test_without_a_reported_cost_the_price_is_the_given_one_and_an_unpriced_model_is_unknown(seeds_file, tmp_path):
    with MeteringProxy("nologprobs") as proxy:
        priced = _generate(proxy, seeds_file, tmp_path / "priced", "--n", "2", "--model", "metered-model",
                           "--price-per-1k", "1,1", "--no-validate")
        billed = proxy.billed_usd
        unpriced = _generate(proxy, seeds_file, tmp_path / "unpriced", "--n", "2", "--model", "metered-model",
                             "--no-validate")
    assert priced.returncode == 0 and unpriced.returncode == 0, priced.stderr[-2000:] + unpriced.stderr[-2000:]
    gen = json.loads((tmp_path / "priced" / "manifest.json").read_text())["usage"]["stages"]["generation"]
    assert gen["cost_sources"] == {"price_override": 2} and gen["cost_usd"] == pytest.approx(billed)
    usage = json.loads((tmp_path / "unpriced" / "manifest.json").read_text())["usage"]
    gen = usage["stages"]["generation"]
    assert gen["cost_usd"] is None and usage["total"]["cost_usd"] is None and gen["cost_sources"] == {"unpriced": 2}
    assert "'metered-model' is not in backends/pricing.py" in gen["cost_note"]
    assert "unknown" in unpriced.stdout and "is not in backends/pricing.py" in unpriced.stdout
