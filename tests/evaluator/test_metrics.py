"""Metrics against hand-computed values and scikit-learn; McNemar on known tables; paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from evaluator.metrics import (
    bootstrap_ci,
    classification_metrics,
    majority_baseline,
    mcnemar_exact,
    metrics_by_lang,
    paired_comparison,
)
from evaluator.parser import INVALID

LABELS = ["positive", "negative", "neutral"]
GOLD = ["positive", "positive", "negative", "neutral", "neutral", "neutral"]
PRED = ["positive", "negative", "negative", "neutral", INVALID, "positive"]


def test_hand_computed_values():
    m = classification_metrics(GOLD, PRED, LABELS)
    assert m["accuracy"] == pytest.approx(3 / 6)
    # positive: TP 1, predicted 2, support 2; negative: TP 1, predicted 2, support 1;
    # neutral: TP 1, predicted 1, support 3 (the invalid answer is a miss, not a prediction).
    assert m["per_class"]["positive"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["negative"]["precision"] == 0.5
    assert m["per_class"]["negative"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["neutral"]["recall"] == pytest.approx(1 / 3)
    assert m["per_class"]["neutral"]["f1"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert m["invalid_rate"] == pytest.approx(1 / 6)
    assert m["confusion"]["columns"] == [*LABELS, INVALID]
    assert m["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 1]]


def test_agrees_with_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(3)
    gold = rng.choice(LABELS, size=300).tolist()
    pred = rng.choice([*LABELS, INVALID], size=300, p=[0.4, 0.2, 0.3, 0.1]).tolist()
    m = classification_metrics(gold, pred, LABELS, n_bootstrap=50)
    assert m["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=LABELS, average="macro", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        c = m["per_class"][label]
        assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    sk = confusion_matrix(gold, pred, labels=[*LABELS, INVALID])[: len(LABELS)]
    assert m["confusion"]["matrix"] == sk.tolist()


def test_bootstrap_intervals_are_seeded_and_contain_the_estimate():
    rng = np.random.default_rng(0)
    gold = rng.choice(LABELS, size=200).tolist()
    pred = [g if rng.random() < 0.7 else "neutral" for g in gold]
    a = bootstrap_ci(gold, pred, LABELS, seed=1)
    assert a == bootstrap_ci(gold, pred, LABELS, seed=1)
    assert a != bootstrap_ci(gold, pred, LABELS, seed=2)
    m = classification_metrics(gold, pred, LABELS, seed=1)
    assert a["accuracy"][0] < m["accuracy"] < a["accuracy"][1]
    assert a["macro_f1"][0] < m["macro_f1"] < a["macro_f1"][1]
    assert 0.05 < a["accuracy"][1] - a["accuracy"][0] < 0.2  # ~ ±1.96·sqrt(.7·.3/200) ≈ ±0.064


def test_per_language_groups():
    langs = ["en", "en", "en", "vi", "vi", "vi"]
    m = metrics_by_lang(GOLD, PRED, langs, LABELS, n_bootstrap=20)
    assert m["by_lang"]["en"]["accuracy"] == pytest.approx(2 / 3)
    assert m["by_lang"]["vi"]["accuracy"] == pytest.approx(1 / 3)
    assert m["by_lang"]["vi"]["invalid_rate"] == pytest.approx(1 / 3)
    assert m["by_lang"]["en"]["n"] == 3


def test_majority_baseline_overall_and_per_language():
    gold = ["neutral"] * 5 + ["positive"] * 3 + ["negative"] * 2
    langs = ["en"] * 5 + ["vi"] * 5
    base = majority_baseline(gold, langs)
    assert (base["label"], base["accuracy"]) == ("neutral", 0.5)
    assert base["by_lang"]["en"] == {"label": "neutral", "accuracy": 1.0}
    assert base["by_lang"]["vi"] == {"label": "positive", "accuracy": 0.6}


@pytest.mark.parametrize(("b", "c", "p"), [
    (1, 9, 22 / 1024),  # 2 · P(X ≤ 1), X ~ Bin(10, 1/2) = 2 · 11/1024
    (10, 0, 2 / 1024),
    (5, 5, 1.0),
    (0, 0, 1.0),  # no discordant pairs: no evidence of a difference
    (3, 12, 2 * (1 + 15 + 105 + 455) / 2**15),  # 2 · P(X ≤ 3), X ~ Bin(15, 1/2)
])
def test_mcnemar_exact_on_known_tables(b, c, p):
    # 20 concordant pairs around the discordant ones: they must not change the test.
    base = [True] * 12 + [False] * 8 + [True] * b + [False] * c
    tuned = [True] * 12 + [False] * 8 + [False] * b + [True] * c
    out = mcnemar_exact(base, tuned)
    assert (out["base_only"], out["tuned_only"], out["both_correct"], out["both_wrong"]) == (b, c, 12, 8)
    assert out["mcnemar_p"] == pytest.approx(p)


def test_paired_comparison():
    gold = ["positive"] * 40
    base = ["positive"] * 20 + ["negative"] * 20
    tuned = ["positive"] * 35 + ["negative"] * 5  # fixes 15 items, breaks none
    p = paired_comparison(gold, base, tuned, seed=0)
    assert p["accuracy_delta"] == pytest.approx(0.375)
    assert (p["base_only"], p["tuned_only"]) == (0, 15)
    assert p["mcnemar_p"] == pytest.approx(2 / 2**15)
    low, high = p["accuracy_delta_ci"]
    assert 0.15 < low < 0.375 < high < 0.6
    assert p == paired_comparison(gold, base, tuned, seed=0)


def test_paired_interval_is_narrower_than_unpaired_when_models_agree_mostly():
    # Both models share most errors: the pairing removes that shared variance.
    rng = np.random.default_rng(5)
    gold = rng.choice(LABELS, size=400).tolist()
    base = [g if rng.random() < 0.6 else INVALID for g in gold]
    tuned = [g if (b == g or rng.random() < 0.2) else b for g, b in zip(gold, base, strict=True)]
    paired = paired_comparison(gold, base, tuned, seed=0)["accuracy_delta_ci"]
    a = bootstrap_ci(gold, base, LABELS, seed=1)["accuracy"]
    b = bootstrap_ci(gold, tuned, LABELS, seed=2)["accuracy"]
    unpaired_half_width = ((a[1] - a[0]) ** 2 + (b[1] - b[0]) ** 2) ** 0.5 / 2
    assert (paired[1] - paired[0]) / 2 < unpaired_half_width


def test_vectorised_macro_f1_agrees_with_scikit_learn_row_by_row():
    from evaluator.metrics import _encode, macro_f1_rows

    rng = np.random.default_rng(11)
    gold = rng.choice(LABELS, size=(20, 30))
    pred = rng.choice([*LABELS, INVALID], size=(20, 30))
    encoded = [_encode(g.tolist(), p.tolist(), LABELS) for g, p in zip(gold, pred, strict=True)]
    rows = macro_f1_rows(np.stack([e[0] for e in encoded]), np.stack([e[1] for e in encoded]), len(LABELS))
    for row, g, p in zip(rows, gold, pred, strict=True):
        assert row == pytest.approx(f1_score(g, p, labels=LABELS, average="macro", zero_division=0))


def test_bootstrap_is_the_seeded_percentile_bootstrap_of_items():
    # The interval is the 2.5/97.5 percentiles over resamples of items drawn with
    # default_rng(seed).integers: recomputed here with scikit-learn on every resample.
    rng = np.random.default_rng(4)
    gold = rng.choice(LABELS, size=60).tolist()
    pred = rng.choice([*LABELS, INVALID], size=60).tolist()
    ci = bootstrap_ci(gold, pred, LABELS, seed=7, n=200)
    idx = np.random.default_rng(7).integers(0, 60, size=(200, 60))
    g, p = np.array(gold), np.array(pred)
    acc = [accuracy_score(g[i], p[i]) for i in idx]
    f1 = [f1_score(g[i], p[i], labels=LABELS, average="macro", zero_division=0) for i in idx]
    assert ci["accuracy"] == pytest.approx(np.percentile(acc, [2.5, 97.5]).tolist())
    assert ci["macro_f1"] == pytest.approx(np.percentile(f1, [2.5, 97.5]).tolist())


def test_paired_bootstrap_matches_scipy_and_handles_one_item():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(8)
    gold = rng.choice(LABELS, size=50).tolist()
    base = rng.choice(LABELS, size=50).tolist()
    tuned = [g if rng.random() < 0.6 else b for g, b in zip(gold, base, strict=True)]
    out = paired_comparison(gold, base, tuned, seed=3, n_bootstrap=300)
    b = np.array([x == y for x, y in zip(gold, base, strict=True)], dtype=float)
    t = np.array([x == y for x, y in zip(gold, tuned, strict=True)], dtype=float)
    ref = bootstrap((t - b,), np.mean, n_resamples=300, method="percentile", rng=np.random.default_rng(3))
    assert out["accuracy_delta_ci"] == pytest.approx([ref.confidence_interval.low, ref.confidence_interval.high])
    one = paired_comparison(["positive"], ["negative"], ["positive"], seed=0)
    assert (one["accuracy_delta"], one["accuracy_delta_ci"]) == (1.0, [1.0, 1.0])
    assert bootstrap_ci(["positive"], ["positive"], LABELS)["accuracy"] == [1.0, 1.0]


def test_mcnemar_agrees_with_the_binomial_test_on_random_tables():
    from scipy.stats import binomtest

    rng = np.random.default_rng(9)
    for _ in range(30):
        base = (rng.random(int(rng.integers(1, 80))) < rng.random()).tolist()
        tuned = (rng.random(len(base)) < rng.random()).tolist()
        out = mcnemar_exact(base, tuned)
        b, c = out["base_only"], out["tuned_only"]
        assert b == sum(x and not y for x, y in zip(base, tuned, strict=True))
        assert c == sum(y and not x for x, y in zip(base, tuned, strict=True))
        expected = binomtest(c, b + c, 0.5).pvalue if b + c else 1.0
        assert out["mcnemar_p"] == pytest.approx(expected)


def test_empty_group_gives_zeros():
    m = classification_metrics([], [], LABELS)
    assert (m["accuracy"], m["macro_f1"], m["accuracy_ci"]) == (0.0, 0.0, [0.0, 0.0])
    assert m["confusion"]["matrix"] == [[0] * 4] * 3
    assert paired_comparison([], [], [])["mcnemar_p"] == 1.0
