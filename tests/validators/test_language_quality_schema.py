"""Language, quality and schema checks on planted cases."""

from __future__ import annotations

from tests.validators.helpers import make
from validators.base import Context, build


def _one(fin, name, record, **options):
    return build(name, fin, options, Context()).check([record])[0]


# ---- language -----------------------------------------------------------------------------------
def test_english_text_labelled_vi_is_rejected(fin):
    v = _one(fin, "language", make("Vietnam's coffee exports hit a record high in the first half of the year.", lang="vi"))
    assert not v.passed and v.details["detected"] == "en"
    assert v.reason.startswith("language: expected 'vi', looks like 'en'")


def test_short_vietnamese_passes_through_diacritics(fin):
    for text in ["cổ phiếu tăng mạnh", "thị trường lao dốc", "lãi suất đi ngang"]:
        v = _one(fin, "language", make(text, lang="vi"))
        assert v.passed and v.score > 0.9 and v.details["vi_diacritic_share"] >= 0.5


def test_german_labelled_en_is_rejected_and_english_passes(fin):
    german = make("Der Umsatz des Unternehmens stieg im dritten Quartal deutlich, vor allem dank der Nachfrage aus Asien.")
    assert not _one(fin, "language", german).passed
    assert _one(fin, "language", make("Operating profit fell to EUR 3.1 mn from EUR 5.8 mn a year earlier.")).passed


def test_language_threshold_is_configurable(fin):
    rec = make("co phieu tang manh", lang="vi")  # no diacritics: langdetect alone, around 0.7
    assert _one(fin, "language", rec).passed
    assert not _one(fin, "language", rec, min_prob=0.95).passed


# ---- quality ------------------------------------------------------------------------------------
def test_label_word_leak_is_flagged(fin):
    v = _one(fin, "quality", make("Positive results: the bank's profit rose 12% in the quarter.", label="positive"))
    assert not v.passed and v.details["rule"] == "label_leak"
    assert v.reason == "label word leak: 'positive' in a positive sample"
    # the word of another label is not a leak, and a clean sample passes
    assert _one(fin, "quality", make("Profit rose despite negative currency effects.", label="positive")).passed
    assert _one(fin, "quality", make("Nordvik Shipping's net sales rose 9.2% year on year.", label="positive")).passed


def test_vietnamese_label_word_leak_with_or_without_diacritics(fin):
    v = _one(fin, "quality", make("Tin tích cực: lợi nhuận ngân hàng tăng 12%.", label="positive", lang="vi"),
             leak_synonyms=True)
    assert not v.passed and v.details["word"] == "tich cuc"


def test_repeated_ngrams_prompt_echo_and_boilerplate(fin):
    rep = _one(fin, "quality", make("shares rose sharply shares rose sharply shares rose sharply shares rose sharply"))
    assert not rep.passed and rep.details["rule"] == "repeat" and "'shares rose sharply'" in rep.reason
    echo = _one(fin, "quality", make("Write one realistic English news headline whose sentiment for investors is clearly positive.", label="neutral"))
    assert not echo.passed and echo.details["rule"] == "prompt_echo"
    ai = _one(fin, "quality", make("As an AI language model, I think the bank's profit rose 5% this quarter."))
    assert not ai.passed and ai.details["rule"] == "boilerplate" and "As an AI" in ai.reason
    vi = _one(fin, "quality", make("Dưới đây là một tin tức: lợi nhuận của Vinamilk tăng 12%.", lang="vi"))
    assert not vi.passed and vi.details["rule"] == "boilerplate"


def test_template_placeholders_and_preambles_from_a_small_model(fin):
    """What SmolLM2-135M wrote from list-shaped prompts: placeholders copied, not filled, and preambles."""
    for text in ["{{branded_text}}", "{{1}}. Press release: shares of the bank rose", "Acme [Company Name] cut its guidance",
                 "Revenue rose {percent} in the quarter", "<company_name> reports a quarterly loss",
                 "The [Insurance Company] has also announced plans to revamp its [Lloyds] unit"]:
        v = _one(fin, "quality", make(text))
        assert not v.passed and v.details["rule"] == "placeholder", text
    preamble = _one(fin, "quality", make("Here are the text sentences with their sentiment in a JSON format: bank up"))
    assert not preamble.passed and preamble.details["rule"] == "boilerplate"
    for text in ["Oil rises 2% as supply tightens [Reuters]", "Profit $AAPL up 5% (Q3) [1]", "Stake {222.114.03} sold",
                 "Lloyds Banking Group [LLOY] rose 3%"]:
        assert _one(fin, "quality", make(text)).passed, text


# ---- schema -------------------------------------------------------------------------------------
def test_schema_rejects_unknown_label_bad_language_and_length(fin):
    assert not _one(fin, "schema", make("Shares of the bank rose 5% today.", label="bullish")).passed
    assert "not in ['positive', 'negative', 'neutral']" in _one(fin, "schema", make("Shares rose 5% today.", label="up")).reason
    assert _one(fin, "schema", make("Shares rose.", lang="de")).details["rule"] == "bad_lang"
    assert _one(fin, "schema", make("Up 5%")).reason == "text too short (5 < 8 chars)"
    assert not _one(fin, "schema", make("x" * 321)).passed
    assert _one(fin, "schema", make("Shares of the bank rose 5% today.")).passed


def test_unknown_option_is_a_user_error_naming_the_task_file(fin):
    import pytest

    from core.errors import UserError

    with pytest.raises(UserError, match=r"fin_sentiment.yaml: validators\[quality\].max_repeats: unknown option"):
        build("quality", fin, {"max_repeats": 2})
