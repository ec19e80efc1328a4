"""Classification metrics, bootstrap intervals and the paired base-vs-tuned comparison.

    m = classification_metrics(gold, pred, labels=task.label_names, seed=0)   # accuracy, macro-F1, per class
    p = paired_comparison(gold, base_pred, tuned_pred, seed=0)                 # McNemar + paired bootstrap

A prediction is a task label or `parser.INVALID`; an invalid prediction is simply wrong (it is a
false negative of the true class and a false positive of no class). Macro-F1 averages over the
task's labels only, as `sklearn.metrics.f1_score(..., labels=task_labels, average="macro",
zero_division=0)` does; the tests check that they agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from evaluator.parser import INVALID

N_BOOTSTRAP = 1000


def per_class(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every label (0.0 where a ratio has no denominator)."""
    out: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        predicted = sum(p == label for p in pred)
        support = sum(g == label for g in gold)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold) if gold else 0.0


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    classes = per_class(gold, pred, labels)
    return sum(c["f1"] for c in classes.values()) / len(classes) if classes else 0.0


def confusion(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, list]:
    """Rows are true labels, columns the predicted labels plus `invalid`."""
    columns = [*labels, INVALID]
    index = {c: i for i, c in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        if g in index and g != INVALID:
            matrix[index[g]][index.get(p, index[INVALID])] += 1
    return {"rows": list(labels), "columns": columns, "matrix": matrix}


def _encode(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)  # invalid or an unknown gold label: matches no class
    g = np.array([index.get(x, other + 1) for x in gold], dtype=np.int64)
    p = np.array([index.get(x, other) for x in pred], dtype=np.int64)
    return g, p


def _macro_f1_matrix(g: np.ndarray, p: np.ndarray, n_labels: int) -> np.ndarray:
    """Macro-F1 of every row of `g`/`p` (shape: resamples x items) at once."""
    scores = np.zeros(g.shape[0])
    for k in range(n_labels):
        tp = ((g == k) & (p == k)).sum(axis=1)
        fp = ((g != k) & (p == k)).sum(axis=1)
        fn = ((g == k) & (p != k)).sum(axis=1)
        denom = 2 * tp + fp + fn  # F1 = 2TP / (2TP + FP + FN), 0 where undefined
        scores += np.divide(2 * tp, denom, out=np.zeros(g.shape[0]), where=denom > 0)
    return scores / n_labels


def bootstrap_ci(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], *, seed: int = 0,
    n: int = N_BOOTSTRAP, level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of accuracy and macro-F1, resampling items with replacement."""
    if not gold:
        return {"accuracy": [0.0, 0.0], "macro_f1": [0.0, 0.0]}
    g, p = _encode(gold, pred, labels)
    idx = np.random.default_rng(seed).integers(0, len(g), size=(n, len(g)))
    gs, ps = g[idx], p[idx]
    acc = (gs == ps).mean(axis=1)
    f1 = _macro_f1_matrix(gs, ps, len(labels))
    return {"accuracy": _interval(acc, level), "macro_f1": _interval(f1, level)}


def _interval(samples: np.ndarray, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return [float(low), float(high)]


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
        "invalid_rate": sum(p == INVALID for p in pred) / len(pred) if pred else 0.0,
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
    """McNemar's exact test: a two-sided binomial test on the discordant pairs.

    `b` = items only the base model got right, `c` = items only the tuned model got right. Under
    the null hypothesis (equal accuracy) each discordant item is a fair coin: p = binomtest(c, b+c, 0.5).
    """
    from scipy.stats import binomtest

    b = sum(x and not y for x, y in zip(base_correct, tuned_correct, strict=True))
    c = sum(y and not x for x, y in zip(base_correct, tuned_correct, strict=True))
    p = binomtest(c, b + c, 0.5, alternative="two-sided").pvalue if b + c else 1.0
    both = sum(x and y for x, y in zip(base_correct, tuned_correct, strict=True))
    return {"both_correct": both, "base_only": b, "tuned_only": c,
            "both_wrong": len(base_correct) - both - b - c, "mcnemar_p": float(p)}


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
    idx = np.random.default_rng(seed).integers(0, len(gold), size=(n_bootstrap, len(gold)))
    deltas = (tuned[idx] - base[idx]).mean(axis=1)
    return {**out, "n": len(gold), "accuracy_delta": float(tuned.mean() - base.mean()),
            "accuracy_delta_ci": _interval(deltas, level)}


def paired_by_lang(
    gold: Sequence[str], base_pred: Sequence[str], tuned_pred: Sequence[str], langs: Sequence[str], *,
    seed: int = 0, n_bootstrap: int = N_BOOTSTRAP,
) -> dict:
    """`paired_comparison` over all items, plus the same under `by_lang` for each language."""
    return _overall_and_by_lang(
        lambda g, b, t: paired_comparison(g, b, t, seed=seed, n_bootstrap=n_bootstrap),
        (gold, base_pred, tuned_pred), langs)
