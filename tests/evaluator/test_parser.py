"""Each parser rule, its order, and that nothing unmatched is ever mapped to a label."""

from __future__ import annotations

import unicodedata

import pytest

from core.tasks import load_task
from evaluator.parser import INVALID, first_mention, parse_label


@pytest.mark.parametrize(("text", "label"), [
    ('{"label": "positive"}', "positive"),
    ('{"label": "bearish"}', "negative"),  # JSON values go through the task's synonyms too
    ('Sure! {"label": "neutral"} is my answer', "neutral"),
    ('```json\n{"label": "negative"}\n```', "negative"),
])
def test_json_rule(fin_task, text, label):
    parsed = parse_label(text, fin_task)
    assert (parsed.label, parsed.rule) == (label, "json")


@pytest.mark.parametrize("text", ['{"sentiment": "positive"}', '{"label": "sideways"}', '{"label": 1}'])
def test_json_without_a_known_label_is_invalid_not_rescued(fin_task, text):
    # The text still mentions "positive", but a JSON answer is judged as JSON only.
    assert parse_label(text, fin_task).label is None
    assert parse_label(text, fin_task).rule == INVALID


@pytest.mark.parametrize("text", ["positive", " positive\n", "positive.", '"positive"', "`positive`", "**positive**"])
def test_exact_label_with_harmless_wrapping(fin_task, text):
    parsed = parse_label(text, fin_task)
    assert (parsed.label, parsed.rule) == ("positive", "exact")


@pytest.mark.parametrize("text", ["Positive", "NEGATIVE!", "  Neutral. "])
def test_case_is_folded(fin_task, text):
    parsed = parse_label(text, fin_task)
    assert parsed.rule == "case_folded"
    assert parsed.label == text.strip(" .!").lower()


@pytest.mark.parametrize(("text", "label"), [
    ("bullish", "positive"), ("Bearish", "negative"), ("mildly positive", "positive"),
    ("tích cực", "positive"), ("TIÊU CỰC", "negative"), ("tieu cuc", "negative"),  # diacritics and case
    ("trung tính", "neutral"), ("trung lap", "neutral"),
    (unicodedata.normalize("NFD", "tích cực"), "positive"),  # NFD-decomposed Vietnamese folds the same as NFC
])
def test_synonyms_including_vietnamese_diacritics(fin_task, text, label):
    parsed = parse_label(text, fin_task)
    assert (parsed.label, parsed.rule) == (label, "synonym")


@pytest.mark.parametrize(("text", "label"), [
    ("The sentiment is positive.", "positive"),
    ("I would say negative, not positive", "negative"),  # the first mention wins, even if later ones differ
    ("Overall mildly positive for investors", "positive"),
    ("Tin này tiêu cực cho nhà đầu tư", "negative"),
    ("Answer: NEUTRAL because no direction", "neutral"),
])
def test_first_mention(fin_task, text, label):
    parsed = parse_label(text, fin_task)
    assert (parsed.label, parsed.rule) == (label, "first_mention")


@pytest.mark.parametrize("text", ["", "   ", "up", "it will go up a lot", "positively", "posit", "1", "0", "N/A"])
def test_anything_else_is_invalid(fin_task, text):
    # "positively" is not a whole-word mention; numeric codes of datasets are never model answers.
    assert parse_label(text, fin_task).label is None
    assert parse_label(text, fin_task).rule == INVALID
    assert not parse_label(text, fin_task).valid


def test_longest_spelling_wins_at_one_position(fin_task):
    assert first_mention("strongly negative outlook", fin_task) == "negative"
    assert first_mention("no label here", fin_task) is None


def test_json_answers_of_a_task_with_free_text():
    task = load_task("support_intent")
    parsed = parse_label('{"intent": "billing.refund_request", "reply": "We are sorry..."}', task)
    assert (parsed.label, parsed.rule) == ("billing.refund_request", "json")
    assert parse_label("billing.refund_request", task).rule == "exact"
    assert parse_label("Billing refund request", task).label == "billing.refund_request"


def test_unscorable_rows_are_invalid_not_the_first_label():
    """A backend row with no finite log-probability (API error, no logprobs) is counted invalid, with why."""
    from core.tasks import load_task
    from evaluator.inference import INVALID, _score

    task = load_task("fin_sentiment")

    class NoLogprobs:
        def score(self, prompts, choices):
            return [[float("nan")] * len(choices), [-1.0] + [-5.0] * (len(choices) - 1)]

    first, second = _score(NoLogprobs(), task, [[], []])
    assert first.label == INVALID and "no finite log-probability" in first.error
    assert second.label == task.label_names[0] and second.rule == "score"
