"""The LLM judge: verdicts from the rubric and the keep rule, unparseable answers kept with a reason, the
chain's place for it, the order and label checks (a planted judge: tests/validators/fake_backend.py), and
100% parsed answers from the tiny model and the real smollm2-135m."""

from __future__ import annotations

import json

import pytest

from backends import Backend
from core.errors import UserError
from tests.backends.test_vllm_fake import fake_vllm  # noqa: F401 (the fixture)
from tests.validators.fake_backend import PlantedJudge, first_listed
from tests.validators.helpers import make
from validators.base import Context, build
from validators.chain import run_chain
from validators.judge_check import label_check, order_check, wrong_label

GOOD = "Nordvik Shipping's net sales rose 9.2% year on year."
ODD = "Ad on Facebook:"
FALLS = "Operating profit fell to EUR 3.1 mn from EUR 5.8 mn a year earlier."
TRUTH = {GOOD: "positive", ODD: "neutral", FALLS: "negative"}


def reader(text: str, label: str, enums: dict) -> dict[str, int]:
    """A planted judge that reads the sample: ODD is not a plausible text, a wrong label scores 1."""
    return {"plausible": 1 if text == ODD else 3, "label_right": 3 if TRUTH.get(text) == label else 1}


def _judge(fin, backend, **options):
    return build("judge", fin, options, Context(backend=backend, seed=0))


def test_verdicts_follow_the_rubric_and_the_keep_rule(fin):
    judge = PlantedJudge(reader)
    assert isinstance(judge, Backend)
    good, odd, wrong = _judge(fin, judge).check([make(GOOD, "positive"), make(ODD, "neutral"), make(FALLS, "positive")])
    assert good.passed and good.details["scores"] == {"plausible": 3, "label_right": 3} and good.score == 1.0
    assert good.details["reasoning"] == "planted for positive" and good.details["keep"] is True
    assert not odd.passed and odd.details["rule"] == "below_threshold"
    assert odd.reason.startswith("judge: plausible 1 < 2 (no - a fragment")
    assert not wrong.passed and "label_right 1 < 2" in wrong.reason and wrong.score == 0.5
    prompt = judge.calls[0][0][0][1]["content"]
    assert "Text: " + GOOD in prompt and "1 = no - a fragment" in prompt and '"label_right": 1|2|3' in prompt
    assert judge.calls[0][1].temperature == 0.0 and judge.calls[0][1].max_new_tokens == 200 + 16 * 3 + 32


def test_flag_mode_and_thresholds_and_bad_options(fin):
    judge = PlantedJudge(lambda text, label, enums: {"plausible": 2, "label_right": 2})
    flagged = _judge(fin, judge, mode="flag", thresholds={"label_right": 3})
    verdict = flagged.check([make(GOOD, "positive")])[0]
    assert verdict.passed and verdict.details["keep"] is False and verdict.details["rule"] == "flagged"
    assert verdict.reason.startswith("judge would reject: label_right 2 < 3 (arguable")
    assert flagged.doubt(verdict) == 0.9
    kept = _judge(fin, judge).check([make(GOOD, "positive")])[0]  # the YAML's thresholds: 2 and 2
    assert kept.passed and _judge(fin, judge).doubt(kept) == 0.25  # kept at the middle marks: some doubt
    for options, message in [({"thresholds": {"tone": 2}}, "thresholds.tone: not a score of the rubric"),
                             ({"thresholds": {"plausible": 7}}, "thresholds.plausible: 7 is not one of its options"),
                             ({"mode": "loud"}, "mode: 'loud' is not one of: filter, flag")]:
        with pytest.raises(UserError) as err:
            _judge(fin, judge, **options)
        assert "fin_sentiment.yaml: validators[judge]" in str(err.value) and message in str(err.value)


def test_an_unparseable_answer_keeps_the_sample_with_the_reason_and_the_batch_goes_on(fin):
    judge = PlantedJudge(lambda text, label, enums: "I think it is fine" if text == ODD else reader(text, label, enums))
    accepted, rejected, report = run_chain(fin, [make(GOOD, "positive"), make(ODD, "neutral"), make(FALLS, "positive")],
                                           backend=judge, only=["judge"], enable=["judge"], progress=False)
    assert [r.text for r in rejected] == [FALLS]
    odd = next(r for r in accepted if r.text == ODD)
    verdict = odd.verdict("judge")
    assert verdict.passed and verdict.details["rule"] == "unparsed" and verdict.details["parsed"] is False
    assert verdict.reason == "judge: no verdict, kept for a person (invalid JSON: planted)"
    assert verdict.details["raw"] == "I think it is fine" and odd.meta["doubt"] == 0.5
    usage = report["validators"]["judge"]["usage"]
    assert usage["records"] == 3 and usage["parsed"] == 2 and usage["unparsed"] == 1
    assert usage["tokens"] == {"prompt": 30, "completion": 15} and usage["cost_usd"] is None
    assert usage["model"] == "planted-judge" and usage["thresholds"] == {"plausible": 2, "label_right": 2}


def test_the_chain_runs_the_judge_only_when_enabled_and_after_the_cheap_checks(fin):
    judge = PlantedJudge(reader)
    records = [make(GOOD, "positive"), make("The positive news: profit is up.", "positive")]  # 2nd leaks its label
    _, _, report = run_chain(fin, records, progress=False)  # the built-in chain: judge configured, off
    assert "judge" not in report["validators"]
    _, _, report = run_chain(fin, records, enable=["judge"], progress=False)
    assert "no model backend given" in report["validators"]["judge"]["skipped"]
    other = PlantedJudge(reader)
    accepted, _, report = run_chain(fin, records, backend=other, judge_backend=judge, enable=["judge"],
                                    skip=["self_consistency"], progress=False)
    assert len(judge.calls) == 1 and [p[1]["content"].count(GOOD) for p in judge.calls[0][0]] == [1]
    assert not other.calls  # the judge asks its own model
    assert report["validators"]["judge"]["checked"] == 1 and accepted[0].verdict("judge").passed


def test_order_check_flags_a_judge_that_follows_position_and_clears_one_that_reads(fin):
    records = [make(GOOD, "positive"), make(ODD, "neutral"), make(FALLS, "negative")]
    positional = order_check(fin, records, PlantedJudge(first_listed))
    assert positional["flagged"] and positional["share_changed"] == 1.0 and positional["compared"] == 3
    assert positional["keep_rate"] == {"as_written": 0.0, "reversed": 1.0}
    assert positional["scores"]["plausible"] == {"changed": 1.0, "mean_shift": 2.0}
    fair = order_check(fin, records, PlantedJudge(reader))
    assert not fair["flagged"] and fair["share_changed"] == 0.0


def test_label_check_tells_a_judge_that_reads_the_label_from_chance(fin):
    records = [make(GOOD, "positive"), make(FALLS, "negative"), make(ODD, "neutral")]
    assert all(wrong_label(fin, r, 0) != r.labels["label"] for r in records)
    reads = label_check(fin, records, PlantedJudge(reader))
    assert reads["keep_rate_true_label"] == 0.6667 and reads["keep_rate_wrong_label"] == 0.0
    assert reads["balanced_accuracy"] == 0.8333
    assert reads["scores"]["label_right"] == {"mean_true": 3.0, "mean_wrong": 1.0, "pairs_true_higher": 1.0,
                                              "true_higher": 3, "wrong_higher": 0, "ties": 0, "sign_test_p": 0.25}
    blind = label_check(fin, records, PlantedJudge(first_listed))
    assert blind["balanced_accuracy"] == 0.5 and blind["scores"]["label_right"]["ties"] == 3


def test_judge_check_command_writes_its_report(tmp_path, seeds_file, capsys):
    from validators.judge_check import main

    out = tmp_path / "check.json"
    assert main(["--task", "fin_sentiment", "--in", str(seeds_file), "--lang", "en", "--limit", "3",
                 "--model", "tiny", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["records"] == 3 and report["order"]["compared"] == 3 and report["labels"]["compared"] == 3
    printed = capsys.readouterr().out
    assert printed.startswith("judge-check: fin_sentiment on tiny (3 records)") and "balanced accuracy" in printed


def _parses_every_answer(task, records, model: str, **backend_options) -> list:
    from backends import get_backend

    backend = get_backend("transformers", model=model, device="cpu", **backend_options)
    judge = build("judge", task, {"mode": "flag"}, Context(backend=backend))
    verdicts = judge.check(records)
    assert judge.usage["parsed"] == len(records) and judge.usage["unparsed"] == 0
    for verdict in verdicts:
        assert verdict.details["parsed"] and verdict.details["reasoning"]
        for name, value in verdict.details["scores"].items():
            assert value in task.rubric.score(name).values
    assert judge.usage["tokens"]["completion"] > 0
    return verdicts


def test_the_judge_parses_every_answer_of_the_tiny_model_on_both_tasks(fin, one_torch_thread):
    from core.records import Record
    from core.tasks import load_task

    _parses_every_answer(fin, [make(GOOD, "positive"), make(ODD, "neutral"), make("Lãi ròng tăng 12%.", "positive",
                                                                                  lang="vi")], "tiny")
    support = load_task("support_intent")
    ticket = Record.new(task="support_intent", lang="en", text="I was charged twice for March, please refund one.",
                        labels={"intent": "billing.refund_request", "reply": "Sorry! We refunded the second charge."})
    _parses_every_answer(support, [ticket], "tiny")


def test_the_judge_runs_on_the_vllm_backend(fin, fake_vllm):  # noqa: F811 (the imported fixture)
    """vLLM needs a GPU: tests/fakes/fake_vllm (a FAKE) checks what the judge gives the engine."""
    from backends import get_backend

    judge = build("judge", fin, {}, Context(backend=get_backend("vllm", model="tiny"), seed=3))
    verdicts = judge.check([make(GOOD, "positive"), make(ODD, "neutral")])
    assert judge.usage["parsed"] == 2 and all(v.details["scores"]["plausible"] in (1, 2, 3) for v in verdicts)
    call = fake_vllm.LOG[-1]
    assert call["structured"] == [True] and len(call["seeds"]) == 2 and len(set(call["seeds"])) == 2


@pytest.mark.real
def test_the_judge_parses_every_answer_of_smollm2(fin, one_torch_thread):
    verdicts = _parses_every_answer(fin, [make(GOOD, "positive"), make(ODD, "positive"), make(FALLS, "negative"),
                                          make("Thầy dạy rất nhiệt tình.", "positive", lang="vi")], "smollm2-135m")
    assert all(len(v.details["reasoning"]) <= 200 for v in verdicts)
