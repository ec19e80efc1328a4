"""The judge through the `openai` backend on loopback: every answer parses where the server honours the
JSON-schema response format (tests/fakes/guided_server.py: a FAKE of vLLM's server, the real tiny model
behind it), its tokens and dollars match the server's bill; an answer that is not a verdict, or an API
error, keeps the sample with the reason (tests/fakes/metering_proxy.py, a FAKE metering proxy)."""

from __future__ import annotations

import pytest

from tests.fakes.metering_proxy import MeteringProxy
from tests.validators.helpers import make
from validators.base import Context, build

RECORDS = [("Nordvik Shipping's net sales rose 9.2% year on year.", "positive"), ("Ad on Facebook:", "neutral"),
           ("Operating profit fell to EUR 3.1 mn from EUR 5.8 mn.", "positive")]


def _judge(fin, base_url: str, **backend_options):
    from backends import get_backend

    backend = get_backend("openai", model="judge-model", base_url=base_url, **backend_options)
    return build("judge", fin, {}, Context(judge_backend=backend, seed=0)), backend


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_every_answer_parses_on_a_server_that_honours_the_schema_and_the_bill_matches(fin, one_torch_thread):
    from tests.fakes.guided_server import GuidedServer

    with GuidedServer(model="tiny", price_per_1k=(0.5, 2.0)) as server:
        judge, backend = _judge(fin, server.base_url, price_per_1k=(0.5, 2.0))
        verdicts = judge.check([make(text, label) for text, label in RECORDS])
    assert judge.usage["parsed"] == 3 and judge.usage["unparsed"] == 0
    assert all(v.details["parsed"] and v.details["scores"]["label_right"] in (1, 2, 3) for v in verdicts)
    sent = server.requests[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    props = sent["json_schema"]["schema"]["properties"]
    assert list(props) == ["reasoning", "plausible", "label_right"] and props["plausible"]["enum"] == [1, 2, 3]
    assert len(server.requests) == 3  # no retry was needed
    assert judge.usage["tokens"]["prompt"] == backend.prompt_tokens > 0
    assert judge.usage["cost_usd"] == pytest.approx(server.billed_usd, abs=1e-6) and server.billed_usd > 0


@pytest.mark.parametrize(("mode", "reason"), [
    ("nologprobs", "judge: no verdict, kept for a person (field 'reasoning': Field required"),  # its fixed JSON
    ("402", "judge: no verdict, kept for a person (API error 402: Payment required"),
])
def test_answers_that_are_no_verdict_keep_the_sample_with_the_reason(fin, mode, reason):
    with MeteringProxy(mode, price_per_1k=(1.0, 1.0)) as proxy:
        judge, _ = _judge(fin, proxy.base_url, parse_retries=1, price_per_1k=(1.0, 1.0))
        verdicts = judge.check([make(text, label) for text, label in RECORDS])
    assert all(v.passed and v.details["rule"] == "unparsed" for v in verdicts)
    assert verdicts[0].reason.startswith(reason), verdicts[0].reason
    assert judge.usage["unparsed"] == 3
    if mode == "nologprobs":  # answered twice each (one retry) and billed: the judge's dollars say so
        assert len(proxy.requests) == 6 and judge.usage["cost_usd"] == pytest.approx(proxy.billed_usd)
