"""Classification metrics, bootstrap intervals and the paired base-vs-tuned comparison.

    m = classification_metrics(gold, pred, labels=task.label_names, seed=0)   # accuracy, macro-F1, per class
    p = paired_comparison(gold, base_pred, tuned_pred, seed=0)                 # McNemar + paired bootstrap

The numbers come from scikit-learn, `scipy.stats.bootstrap` and statsmodels; an invalid prediction
(`parser.INVALID`) is simply wrong. The conventions: docs/evaluation.md#design-evaluatormetricspy
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import bootstrap
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from statsmodels.stats.contingency_tables import mcnemar

from evaluator.parser import INVALID

N_BOOTSTRAP = 1000


def per_class(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every label (0.0 where a ratio has no denominator)."""
    if not gold:
        return {label: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for label in labels}
    p, r, f, s = precision_recall_fscore_support(
        list(gold), list(pred), labels=list(labels), zero_division=0.0)
    return {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, label in enumerate(labels)}


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    return float(np.mean(np.asarray(gold, dtype=object) == np.asarray(pred, dtype=object))) if gold else 0.0


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    classes = per_class(gold, pred, labels)
    return float(np.mean([c["f1"] for c in classes.values()])) if classes else 0.0


def confusion(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, list]:
    """Rows are true labels, columns the predicted labels plus `invalid`.

    A prediction outside the labels counts as `invalid`; an item whose gold label is not a task label
    has no row and is left out.
    """
    columns = [*labels, INVALID]
    known = set(labels)
    pred = [p if p in known else INVALID for p in pred]
    if not gold:
        return {"rows": list(labels), "columns": columns, "matrix": [[0] * len(columns) for _ in labels]}
    matrix = confusion_matrix(list(gold), pred, labels=columns)[: len(labels)]
    return {"rows": list(labels), "columns": columns, "matrix": matrix.tolist()}


def _encode(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)  # invalid or an unknown gold label: matches no class
    g = np.array([index.get(x, other + 1) for x in gold], dtype=np.int64)
    p = np.array([index.get(x, other) for x in pred], dtype=np.int64)
    return g, p


def macro_f1_rows(g: np.ndarray, p: np.ndarray, n_labels: int) -> np.ndarray:
    """Macro-F1 of every row of the encoded `g`/`p` (shape: resamples x items) at once.

    The bootstrap needs this statistic for a thousand resamples: scikit-learn's `f1_score` would take
    one call per resample, so this is its formula over integer codes, vectorised (the tests check it
    against `f1_score` row by row).
    """
    scores = np.zeros(g.shape[:-1])
    for k in range(n_labels):
        tp = ((g == k) & (p == k)).sum(axis=-1)
        fp = ((g != k) & (p == k)).sum(axis=-1)
        fn = ((g == k) & (p != k)).sum(axis=-1)
        denom = 2 * tp + fp + fn  # F1 = 2TP / (2TP + FP + FN), 0 where undefined
        scores = scores + np.divide(2 * tp, denom, out=np.zeros(g.shape[:-1]), where=denom > 0)
    return scores / n_labels


def _percentile_bootstrap(
    data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], *, seed: int, n: int, level: float,
) -> list[list[float]]:
    """`scipy.stats.bootstrap` over items, paired across `data`, percentile intervals, seeded.

    `statistic(*arrays, axis=-1)` returns one or more values per resample; the answer holds one
    `[low, high]` per value. One item has one possible resample (scipy refuses a sample that small),
    so its interval is the estimate itself.
    """
    if len(data[0]) < 2:
        estimate = np.atleast_1d(statistic(*data, axis=-1))
        return [[float(x), float(x)] for x in estimate]
    res = bootstrap(data, statistic, paired=True, vectorized=True, n_resamples=n, confidence_level=level,
                    method="percentile", rng=np.random.default_rng(seed))
    low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
    return [[float(a), float(b)] for a, b in zip(low, high, strict=True)]


def bootstrap_ci(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], *, seed: int = 0,
    n: int = N_BOOTSTRAP, level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of accuracy and macro-F1, resampling items with replacement."""
    if not gold:
        return {"accuracy": [0.0, 0.0], "macro_f1": [0.0, 0.0]}
    g, p = _encode(gold, pred, labels)

    def statistic(g: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.stack([(g == p).mean(axis=axis), macro_f1_rows(g, p, len(labels))])

    acc, f1 = _percentile_bootstrap((g, p), statistic, seed=seed, n=n, level=level)
    return {"accuracy": acc, "macro_f1": f1}


def classification_metrics(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], *, seed: int = 0, n_bootstrap: int = N_BOOTSTRAP,
) -> dict:
    """Every single-model number the report shows, for one group of items."""
    ci = bootstrap_ci(gold, pred, labels, seed=seed, n=n_bootstrap)
    return {
        "n": len(gold),
        "accuracy": accuracy(gold, pred),
        "accuracy_ci": ci["accuracy"],
        "macro_f1": macro_f1(gold, pred, labels),
        "macro_f1_ci": ci["macro_f1"],
        "invalid_rate": Counter(pred)[INVALID] / len(pred) if pred else 0.0,
        "per_class": per_class(gold, pred, labels),
        "confusion": confusion(gold, pred, labels),
    }


def _overall_and_by_lang(compute: Callable[..., dict], columns: Sequence[Sequence], langs: Sequence[str]) -> dict:
    """`compute(*columns)` over all items, plus the same on each language's items under `by_lang`."""
    out = compute(*columns)
    out["by_lang"] = {}
    for lang in sorted(set(langs)):
        keep = [i for i, x in enumerate(langs) if x == lang]
        out["by_lang"][lang] = compute(*([column[i] for i in keep] for column in columns))
    return out


def metrics_by_lang(
    gold: Sequence[str], pred: Sequence[str], langs: Sequence[str], labels: Sequence[str], *, seed: int = 0,
    n_bootstrap: int = N_BOOTSTRAP,
) -> dict:
    """`classification_metrics` over all items, plus the same under `by_lang` for each language."""
    return _overall_and_by_lang(
        lambda g, p: classification_metrics(g, p, labels, seed=seed, n_bootstrap=n_bootstrap), (gold, pred), langs)


def majority_baseline(gold: Sequence[str], langs: Sequence[str]) -> dict:
    """The best constant predictor: the most frequent eval label, overall and within each language.

    Choosing it on the eval items themselves makes it the strongest constant baseline there is, so
    beating it is a fair bar (ties go to the alphabetically first label, for determinism).
    """
    def best(values: Sequence[str]) -> tuple[str, float]:
        counts = Counter(values)
        label = min(counts, key=lambda x: (-counts[x], x))
        return label, counts[label] / len(values)

    label, acc = best(gold)
    by_lang = {}
    for lang in sorted(set(langs)):
        lang_label, lang_acc = best([g for g, x in zip(gold, langs, strict=True) if x == lang])
        by_lang[lang] = {"label": lang_label, "accuracy": lang_acc}
    return {"label": label, "accuracy": acc, "by_lang": by_lang}


def mcnemar_exact(base_correct: Sequence[bool], tuned_correct: Sequence[bool]) -> dict:
    """McNemar's exact test on the 2x2 table of (base right?, tuned right?) per item.

    `b` = items only the base model got right, `c` = items only the tuned model got right. Under
    the null hypothesis (equal accuracy) each discordant item is a fair coin: statsmodels' exact test
    is the two-sided binomial test of the discordant pairs (p = 1 where there are none).
    """
    if len(base_correct) != len(tuned_correct):
        raise ValueError(f"{len(base_correct)} base answers but {len(tuned_correct)} tuned answers")
    table = (confusion_matrix([bool(x) for x in base_correct], [bool(y) for y in tuned_correct],
                              labels=[True, False]) if len(base_correct) else np.zeros((2, 2), dtype=int))
    (both, b), (c, both_wrong) = table.tolist()
    p = mcnemar(table, exact=True).pvalue if b + c else 1.0
    return {"both_correct": both, "base_only": b, "tuned_only": c, "both_wrong": both_wrong, "mcnemar_p": float(p)}


def paired_comparison(
    gold: Sequence[str], base_pred: Sequence[str], tuned_pred: Sequence[str], *, seed: int = 0,
    n_bootstrap: int = N_BOOTSTRAP, level: float = 0.95,
) -> dict:
    """Tuned minus base on the same items: McNemar's exact test and a paired bootstrap interval.

    The bootstrap resamples items (both models' answers to an item travel together), so the
    interval reflects that the two models saw the same items.
    """
    base = np.array([g == p for g, p in zip(gold, base_pred, strict=True)], dtype=float)
    tuned = np.array([g == p for g, p in zip(gold, tuned_pred, strict=True)], dtype=float)
    out = mcnemar_exact(base.astype(bool).tolist(), tuned.astype(bool).tolist())
    if len(gold) == 0:
        return {**out, "accuracy_delta": 0.0, "accuracy_delta_ci": [0.0, 0.0], "n": 0}

    def delta(base: np.ndarray, tuned: np.ndarray, axis: int = -1) -> np.ndarray:
        return (tuned - base).mean(axis=axis)

    (ci,) = _percentile_bootstrap((base, tuned), delta, seed=seed, n=n_bootstrap, level=level)
    return {**out, "n": len(gold), "accuracy_delta": float(tuned.mean() - base.mean()), "accuracy_delta_ci": ci}


def paired_by_lang(
    gold: Sequence[str], base_pred: Sequence[str], tuned_pred: Sequence[str], langs: Sequence[str], *,
    seed: int = 0, n_bootstrap: int = N_BOOTSTRAP,
) -> dict:
    """`paired_comparison` over all items, plus the same under `by_lang` for each language."""
    return _overall_and_by_lang(
        lambda g, b, t: paired_comparison(g, b, t, seed=seed, n_bootstrap=n_bootstrap),
        (gold, base_pred, tuned_pred), langs)
