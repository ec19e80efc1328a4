"""Cleaning finds and handles every planted problem; selection is stratified, seeded and leak-free."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.records import normalise_text
from core.tasks import load_task
from data.clean import CleanConfig, clean, transform
from data.dedup import cross_pairs
from data.select import SelectConfig, allocate, select
from data.sources import discover


@pytest.fixture(scope="module")
def task():
    return load_task("fin_sentiment")


@pytest.fixture(scope="module")
def cleaned(samples_dir, task):
    records = [r for s in discover([str(samples_dir)], task) for r in s.records]
    return clean(records, task, CleanConfig())


def _reasons(result) -> dict[str, str]:
    return {r.meta["source_id"]: r.verdicts[-1].name.removeprefix("clean:") for r in result.removed}


def test_planted_problems_are_each_removed_for_the_right_reason(cleaned):
    assert _reasons(cleaned) == {
        "en_021": "exact_duplicate", "en_027": "near_duplicate", "en_009": "conflicting_labels",
        "en_031": "conflicting_labels", "en_036": "wrong_language",
        "vi_021": "exact_duplicate", "vi_025": "near_duplicate", "vi_006": "conflicting_labels",
        "vi_033": "conflicting_labels", "vi_029": "wrong_language",
    }
    assert cleaned.counts["en"]["output"] == 55 and cleaned.counts["vi"]["output"] == 55


def test_mojibake_is_repaired_and_short_vietnamese_kept(cleaned):
    kept = {r.meta["source_id"]: r for r in cleaned.kept}
    assert kept["vi_026"].text == "Lợi nhuận của ngân hàng tăng mạnh trong quý đầu năm."
    assert "€" in kept["en_028"].text and "â‚¬" not in kept["en_028"].text
    assert "Hämeenlinna" in kept["en_037"].text
    # 3-4 syllables defeat langdetect; the diacritics check keeps them
    assert {"vi_030", "vi_031", "vi_032"} <= set(kept)
    assert cleaned.counts["en"]["mojibake_repaired"] == 2 and cleaned.counts["vi"]["mojibake_repaired"] == 1
    # every kept id is recomputed from the cleaned text
    assert all(len(r.id) == 16 for r in cleaned.kept)


def test_transformations():
    cfg = CleanConfig()
    text, steps = transform("$ACME  slides 6% https://t.co/x1", "en", cfg)
    assert text == "$ACME slides 6%" and "urls" in steps
    assert transform("$ACME up", "en", CleanConfig(cashtags="mask"))[0] == "TICKER up"
    vi, _ = transform("cô wzjwz123 dạy hay colonsmile , điểm 8dot5 .", "vi", cfg)
    assert vi == "cô [NAME] dạy hay :), điểm 8.5."
    # English text is never touched by the Vietnamese restoration
    assert transform("Sales rose , analysts said .", "en", cfg)[0] == "Sales rose , analysts said ."


def test_allocate_balanced_water_fills_and_natural_is_proportional():
    assert allocate({"neg": 500, "neu": 40, "pos": 700}, 300, "balanced") == {"neg": 130, "neu": 40, "pos": 130}
    assert allocate({"a": 60, "b": 30, "c": 10}, 10, "natural") == {"a": 6, "b": 3, "c": 1}
    assert sum(allocate({"a": 7, "b": 7, "c": 7}, 20, "balanced").values()) == 20


def test_selection_is_deterministic_stratified_and_leak_free(cleaned, task):
    cfg = SelectConfig(train_per_lang=40, eval_per_lang=10, seed=3)
    train, evals, info = select(cleaned.kept, task, cfg)
    again, evals_again, _ = select(cleaned.kept, task, cfg)
    assert [r.id for r in train] == [r.id for r in again] and [r.id for r in evals] == [r.id for r in evals_again]
    other, _, _ = select(cleaned.kept, task, SelectConfig(train_per_lang=40, eval_per_lang=10, seed=4))
    assert [r.id for r in other] != [r.id for r in train]
    for lang in ("en", "vi"):
        assert sum(r.lang == lang for r in train) == 40 and sum(r.lang == lang for r in evals) == 10
        assert set(info["languages"][lang]["eval"]) == {"negative", "neutral", "positive"}
    assert {r.split for r in train} == {"train"} and {r.split for r in evals} == {"eval"}
    assert not {normalise_text(r.text) for r in train} & {normalise_text(r.text) for r in evals}
    assert cross_pairs([r.text for r in train], [r.text for r in evals]) == [] and info["cross_split_pairs"] == 0


def test_too_few_rows_stops_with_the_count(cleaned, task):
    with pytest.raises(UserError) as exc:
        select(cleaned.kept, task, SelectConfig(train_per_lang=50, eval_per_lang=10))
    assert "en: only 55 clean rows for 50 training + 10 eval" in str(exc.value)
