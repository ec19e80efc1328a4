"""The data-value report's measures for one language: fidelity and diversity against the real data, the
cheap classifier's utility, and gap recovered (the classifier's and the LLM's).

`evaluator.data_value.data_value` calls them per language and writes what they return; the measures
themselves (MAUVE, k-NN precision / recall, Vendi, nearest-neighbour similarity) are in
`evaluator.fidelity`, the classifier in `evaluator.cheap_baseline`, the paired tests in
`evaluator.metrics`. Shapes of the dicts: docs/evaluation.md "Data value".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import fail
from core.io import read_jsonl
from core.records import Record
from core.task_spec import Task
from evaluator.cheap_baseline import DESCRIPTIONS, feature_kind, fit_classifier
from evaluator.fidelity import (
    FeatureSpace,
    distinct_n,
    knn_precision_recall,
    label_balance,
    length_stats,
    mauve_score,
    similarity_summary,
    vendi,
)
from evaluator.metrics import classification_metrics, majority_baseline, paired_comparison

MIN_SAMPLES = 20  # fewer synthetic samples than this: no MAUVE / precision-recall / Vendi (meaningless)
MAX_SUBSAMPLE = 2000  # cap of the equal-size subsamples (pairwise distances are n x n)
REAL_SELF_SAMPLE = 2000  # real texts whose nearest other real text gives the real data's own near-copy rate
PROJECTION_REAL = 1000  # real texts drawn in the 2-D projection


# ---- fidelity and diversity ---------------------------------------------------------------------
def _subsample(items: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def language_fidelity(
    task: Task, lang: str, real: list[Record], synth: list[Record], seeds: list[Record] | None, *,
    k: int, seed: int, near_copy: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fidelity and diversity of `synth` against `real` in `lang`'s feature space, and the points of its
    2-D projection figure (none when the sets are too small for the distribution measures)."""
    rng = np.random.default_rng(seed)
    real_texts, synth_texts = [r.text for r in real], [r.text for r in synth]
    space = FeatureSpace.fit(lang, real_texts, seed=seed)
    nearest_real = space.nearest_similarity(synth_texts, real_texts)
    own = _subsample(range(len(real_texts)), REAL_SELF_SAMPLE, rng)  # indices: a text is not its own neighbour
    real_self = (space.nearest_similarity([real_texts[i] for i in own], real_texts, exclude=own)
                 if len(real_texts) > 1 else np.zeros(0))
    nearest_seed, seed_source = _nearest_seed(space, synth, seeds, real_texts)
    out: dict[str, Any] = {
        "features": {"kind": space.kind, "description": DESCRIPTIONS[space.kind].split(" + ")[0]},
        "nearest_real": similarity_summary(nearest_real, near_copy),
        "nearest_seed": {**similarity_summary(nearest_seed, near_copy), "seeds": seed_source},
        "real_self": {**similarity_summary(real_self, near_copy),
                      "about": "each of up to 2,000 real texts against the other real texts: the real data's own "
                               "near-copy rate, for comparison"},
        "labels": label_balance([r.labels[task.label_name] for r in synth], [r.labels[task.label_name] for r in real],
                                task.label_names),
        "length": {"synthetic": length_stats(synth_texts), "real": length_stats(real_texts)},
    }
    n = min(len(real_texts), len(synth_texts), MAX_SUBSAMPLE)
    real_sub, synth_sub = _subsample(real_texts, n, rng), _subsample(synth_texts, n, rng)
    out["distinct"] = {"n": n, **{name: {f"distinct_{j}": distinct_n(texts, j) for j in (1, 2, 3)}
                                  for name, texts in (("synthetic", synth_sub), ("real", real_sub))}}
    plot: dict[str, Any] = {}
    if n < MIN_SAMPLES or n <= k:
        out["distribution"] = None
        out["distribution_note"] = (f"{n} samples per set: MAUVE, precision/recall and Vendi need at least "
                                    f"{max(MIN_SAMPLES, k + 1)}")
        return out, plot
    real_x, synth_x = space.dense(real_sub), space.dense(synth_sub)
    precision, recall = knn_precision_recall(real_x, synth_x, k=k)
    dist: dict[str, Any] = {"n": n, "precision": precision, "recall": recall, "mauve": mauve_score(real_x, synth_x, seed=seed),
                            "vendi": {"synthetic": vendi(synth_x), "real": vendi(real_x)}, "real_vs_real": None}
    taken = set(real_sub)
    rest = [t for t in real_texts if t not in taken]
    if len(rest) >= n:  # the ceiling at this size: two disjoint real subsamples
        other_x = space.dense(_subsample(rest, n, rng))
        p, r = knn_precision_recall(real_x, other_x, k=k)
        dist["real_vs_real"] = {"precision": p, "recall": r, "mauve": mauve_score(real_x, other_x, seed=seed)["score"]}
    out["distribution"] = dist
    shown = space.dense(_subsample(real_texts, PROJECTION_REAL, rng))
    plot["projection"] = _projection(shown, space.dense(synth_texts), [r.labels[task.label_name] for r in synth], seed)
    return out, plot


def _nearest_seed(space: FeatureSpace, synth: list[Record], seeds: list[Record] | None,
                  real_texts: list[str]) -> tuple[np.ndarray, str]:
    """Each sample's similarity to its closest seed: those its prompt showed, else the seed file, else real."""
    pool = [r.text for r in seeds] if seeds else real_texts
    fallback = "the seeds file" if seeds else "the real records (no seeds given)"
    shown = [list(r.provenance.get("seed_texts") or []) for r in synth]
    out = np.empty(len(synth), dtype=np.float32)
    with_seeds = [i for i, s in enumerate(shown) if s]
    if with_seeds:
        unique = list(dict.fromkeys(t for i in with_seeds for t in shown[i]))
        index = {t: j for j, t in enumerate(unique)}
        sims = space.similarity([synth[i].text for i in with_seeds], unique)
        for row, i in enumerate(with_seeds):
            out[i] = sims[row, [index[t] for t in shown[i]]].max()
    without = [i for i, s in enumerate(shown) if not s]
    if without:
        out[without] = space.nearest_similarity([synth[i].text for i in without], pool)
    if not without:
        return out, "the seeds each sample's prompt showed (provenance.seed_texts)"
    if not with_seeds:
        return out, fallback
    return out, f"the prompt's seeds for {len(with_seeds)} samples, {fallback} for {len(without)}"


def _projection(real_x: np.ndarray, synth_x: np.ndarray, synth_labels: list[str], seed: int) -> dict[str, Any]:
    """2-D PCA of real and synthetic features together (fitted on both; seeded, exact SVD)."""
    from sklearn.decomposition import PCA

    both = np.vstack([real_x, synth_x]).astype(np.float64)
    xy = PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(both)
    return {"real": xy[: len(real_x)], "synthetic": xy[len(real_x):], "synthetic_labels": synth_labels}


# ---- utility ----------------------------------------------------------------------------------------
def language_utility(task: Task, lang: str, real: list[Record], held: list[Record], synth: list[Record], *,
             seed: int, n_bootstrap: int) -> dict[str, Any]:
    """The cheap classifier on each training set, tested on the real eval records of `lang`."""
    label = task.label_name
    gold = [r.labels[label] for r in held]
    texts = [r.text for r in held]
    # Without synthetic samples in this language, real + synthetic would just repeat real only.
    sets = {"real": real, "synthetic": synth, "real_synthetic": real + synth if synth else []}
    preds: dict[str, list[str]] = {}
    out: dict[str, Any] = {"classifier": DESCRIPTIONS[feature_kind(lang)],
                           "majority": majority_baseline(gold, [lang] * len(gold)), "train": {}, "comparisons": {},
                           "label_agreement": None}
    out["majority"].pop("by_lang")
    for name, rows in sets.items():
        if not rows:
            out["train"][name] = None
            continue
        clf = fit_classifier(lang, [r.text for r in rows], [r.labels[label] for r in rows], seed=seed)
        preds[name] = clf.predict(texts)
        m = classification_metrics(gold, preds[name], task.label_names, seed=seed, n_bootstrap=n_bootstrap)
        out["train"][name] = {"n_train": len(rows), **{key: m[key] for key in (
            "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "per_class")}}
        if name == "real" and synth:
            # Label check: how often the real-data classifier gives a synthetic sample its label, next to how
            # often it is right on real eval items. Far below it, many synthetic labels are likely wrong.
            agree = [p == r.labels[label] for p, r in zip(clf.predict([r.text for r in synth]), synth, strict=True)]
            out["label_agreement"] = {"n": len(synth), "agreement": float(np.mean(agree)),
                                      "real_eval_accuracy": m["accuracy"]}
    for a, b in (("real", "real_synthetic"), ("real", "synthetic")):
        if a in preds and b in preds and sets["synthetic"]:
            out["comparisons"][f"{b}_vs_{a}"] = paired(gold, preds[a], preds[b], a, b, seed=seed,
                                                       n_bootstrap=n_bootstrap)
    return out


def paired(gold: Sequence[str], a_pred: Sequence[str], b_pred: Sequence[str], a: str, b: str, *, seed: int,
           n_bootstrap: int) -> dict[str, Any]:
    """`metrics.paired_comparison` of b against a, its counts named after the two sides."""
    p = paired_comparison(gold, a_pred, b_pred, seed=seed, n_bootstrap=n_bootstrap)
    return {"a": a, "b": b, "n": p["n"], "accuracy_delta": p["accuracy_delta"], "accuracy_delta_ci": p["accuracy_delta_ci"],
            "mcnemar_p": p["mcnemar_p"], "both_correct": p["both_correct"], "only_a": p["base_only"],
            "only_b": p["tuned_only"], "both_wrong": p["both_wrong"]}


# ---- gap recovered -------------------------------------------------------------------------------
def gap_recovered(score: float, base: float, reference: float, min_gap: float = 0.005) -> float | None:
    """(score - base) / (reference - base); None where the reference is not above the base (no gap)."""
    gap = reference - base
    return None if gap < min_gap else (score - base) / gap


def classifier_gap(utility: dict[str, Any]) -> dict[str, Any] | None:
    """The classifier's gap recovered: base = majority class, reference = trained on real data."""
    train = utility["train"]
    if not train.get("real"):
        return None
    base, ref = utility["majority"]["accuracy"], train["real"]["accuracy"]
    out = {"metric": "accuracy", "base": "majority class", "base_score": base, "reference": "trained on real",
           "reference_score": ref, "synthetic": None, "real_synthetic": None}
    for name in ("synthetic", "real_synthetic"):
        if train.get(name) and train.get("synthetic"):
            out[name] = gap_recovered(train[name]["accuracy"], base, ref)
    if ref - base < 0.005:
        out["note"] = "trained on real data the classifier is not above the majority class: no gap to recover"
    return out


def llm_gap_recovered(tuned_dir: Path, reference_dir: Path, *, seed: int, n_bootstrap: int) -> dict[str, Any]:
    """The LLM's gap recovered from two evaluator folders, overall and per language.

    `tuned_dir`: base and tuned (on real + synthetic) on the eval split; `reference_dir`: tuned on real
    only, on the same items. The paired test of tuned vs reference says whether the synthetic data moved
    the model at all (a gap recovered of 100% means: no different from real only).
    """
    tuned_rows, ref_rows = _predictions(tuned_dir, need=("base", "tuned")), _predictions(reference_dir, need=("tuned",))
    if [r["id"] for r in tuned_rows] != [r["id"] for r in ref_rows]:
        fail(f"{tuned_dir} and {reference_dir}: not the same eval items in the same order")
    out: dict[str, Any] = {"base": "untuned base model", "data": "tuned on real + synthetic",
                           "reference": "tuned on real only", "tuned_dir": str(tuned_dir),
                           "reference_dir": str(reference_dir), "by_lang": {}}
    groups = [("all", list(range(len(tuned_rows))))]
    groups += [(lang, [i for i, r in enumerate(tuned_rows) if r["lang"] == lang])
               for lang in sorted({r["lang"] for r in tuned_rows})]
    for name, idx in groups:
        gold = [tuned_rows[i]["gold"] for i in idx]
        base = [tuned_rows[i]["base"]["label"] for i in idx]
        tuned = [tuned_rows[i]["tuned"]["label"] for i in idx]
        ref = [ref_rows[i]["tuned"]["label"] for i in idx]
        acc = {key: float(np.mean([p == g for p, g in zip(pred, gold, strict=True)]))
               for key, pred in (("base", base), ("data", tuned), ("reference", ref))}
        row = {"n": len(idx), "accuracy": acc,
               "gap_recovered": gap_recovered(acc["data"], acc["base"], acc["reference"]),
               "data_vs_reference": paired(gold, ref, tuned, "reference", "data", seed=seed, n_bootstrap=n_bootstrap)}
        if name == "all":
            out.update(row)
        else:
            out["by_lang"][name] = row
    return out


def _predictions(folder: Path, need: tuple[str, ...]) -> list[dict]:
    return read_jsonl(folder / "predictions.jsonl", required=("id", "lang", "gold", *need))
