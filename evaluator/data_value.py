"""Is this synthetic set worth training on? Fidelity, diversity, utility and gap recovered, per language.

    python -m evaluator data-value --task fin_sentiment --real runs/fin/data/train.jsonl \\
        --eval runs/fin/data/eval.jsonl --synthetic runs/fin/curated.jsonl --out runs/fin/data_value \\
        [--seeds FILE] [--llm-eval runs/fin/eval --llm-reference runs/fin/ablation/eval]

    from evaluator.data_value import data_value
    result = data_value("fin_sentiment", real, eval_records, synthetic, out_dir="runs/fin/data_value")
    result["by_lang"]["en"]["utility"]["comparisons"]["real_synthetic_vs_real"]["mcnemar_p"], result["verdict"]

Writes `data_value.json` (shape: docs/evaluation.md "Data value"), `report.md` and PNG figures into
`out_dir`. Per language of the data:

- fidelity and diversity (`evaluator.fidelity`): MAUVE, k-NN precision / recall, Vendi score on
  equal-size seeded subsamples, each beside the same measure between two disjoint real subsamples
  (what "indistinguishable from real" scores at this size); each synthetic sample's cosine similarity
  to its nearest real text and to its nearest seed (the seeds its prompt showed, from
  `provenance.seed_texts`, else `seeds`, else the real records), near-copies counted at `near_copy`;
  label balance, length and distinct-n against real.
- utility: the cheap classifier (`evaluator.cheap_baseline`) trained on real only, synthetic only and
  real + synthetic, tested on the real eval split (accuracy, macro-F1, bootstrap CIs), with McNemar's
  exact test and a paired bootstrap for real + synthetic vs real and synthetic vs real.
- gap recovered (AgoraBench, Kim et al., ACL 2025): (score trained on the data - score of the base) /
  (score of the reference - score of the base), for the classifier (base: the majority class;
  reference: trained on the real data) and, given two evaluator folders, for the LLM (base: the
  untuned model; data: tuned on real + synthetic; reference: tuned on real only).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import fail
from core.inputs import ColumnMap
from core.io import read_jsonl, write_json_atomic
from core.records import Record, normalise_text
from core.task_spec import Task
from core.tasks import load_task
from evaluator.cheap_baseline import DESCRIPTIONS, feature_kind, fit_classifier, one_blas_thread
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
from evaluator.metrics import N_BOOTSTRAP, classification_metrics, majority_baseline, paired_comparison
from evaluator.run import load_labelled

NEAR_COPY = 0.9  # cosine at or above which a sample counts as a near-copy (docs/evaluation.md: how it was set)
MIN_SAMPLES = 20  # fewer synthetic samples than this: no MAUVE / precision-recall / Vendi (meaningless)
MAX_SUBSAMPLE = 2000  # cap of the equal-size subsamples (pairwise distances are n x n)
REAL_SELF_SAMPLE = 2000  # real texts whose nearest other real text gives the real data's own near-copy rate
LABEL_DOUBT = 0.15  # label agreement this far below the real eval accuracy: the verdict doubts the labels
PROJECTION_REAL = 1000  # real texts drawn in the 2-D projection
VERSION = 1
CONDITIONS = ("real", "synthetic", "real_synthetic")  # the cheap classifier's training sets


def data_value(
    task: str | Task,
    real: str | Path | list[Record],
    eval_records: str | Path | list[Record],
    synthetic: str | Path | list[Record],
    out_dir: str | Path | None = None,
    *,
    seeds: str | Path | list[Record] | None = None,
    llm_eval: str | Path | None = None,
    llm_reference: str | Path | None = None,
    k: int = 3,
    seed: int = 0,
    near_copy: float = NEAR_COPY,
    n_bootstrap: int = N_BOOTSTRAP,
    columns: ColumnMap | None = None,
) -> dict[str, Any]:
    """Every number of the data-value report; writes it into `out_dir` when given.

    Args:
        real: the real training records (records whose `source` is "synthetic" are left out).
        eval_records: the real held-out split the cheap classifier is tested on.
        synthetic: the synthetic records to judge (an empty file gives a report that says so).
        seeds: the seed records generation drew from, for samples without `provenance.seed_texts`.
        llm_eval / llm_reference: evaluator output folders (metrics.json + predictions.jsonl) of the model
            tuned on real + synthetic (with its base) and of the model tuned on real only, for the LLM's
            gap recovered.
        columns: a column mapping for table inputs (CSV / Parquet ...), the same for every file.

    Returns:
        The dict written to `data_value.json`.
    """
    started = time.perf_counter()
    task = load_task(task) if isinstance(task, str | Path) else task
    if k < 1 or not 0 < near_copy <= 1:
        fail(f"k must be >= 1 (got {k}) and the near-copy threshold in (0, 1] (got {near_copy})")
    real_all = load_labelled(real, task, "real", columns=columns)
    real_recs = [r for r in real_all if r.source != "synthetic"]
    held = load_labelled(eval_records, task, "eval", columns=columns)
    synth = load_labelled(synthetic, task, "synthetic", columns=columns, allow_empty=True)
    seed_recs = load_labelled(seeds, task, "seed", columns=columns) if seeds is not None else None

    result: dict[str, Any] = {
        "version": VERSION, "task": task.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed, "k": k, "labels": task.label_names,
        "inputs": {name: (str(v) if isinstance(v, str | Path) else (None if v is None else f"{len(v)} records"))
                   for name, v in (("real", real), ("eval", eval_records), ("synthetic", synthetic),
                                   ("seeds", seeds), ("llm_eval", llm_eval), ("llm_reference", llm_reference))},
        "thresholds": {"near_copy": near_copy, "min_samples": MIN_SAMPLES, "max_subsample": MAX_SUBSAMPLE},
        "counts": {"real": len(real_recs), "real_dropped_synthetic_source": len(real_all) - len(real_recs),
                   "eval": len(held), "synthetic": len(synth)},
        "by_lang": {},
    }
    plots: dict[str, Any] = {}
    langs = sorted({r.lang for r in real_recs} | {r.lang for r in held} | {r.lang for r in synth})
    for lang in langs:
        with one_blas_thread():
            result["by_lang"][lang], plots[lang] = _language(
                task, lang, [r for r in real_recs if r.lang == lang], [r for r in held if r.lang == lang],
                [r for r in synth if r.lang == lang],
                None if seed_recs is None else [r for r in seed_recs if r.lang == lang],
                k=k, seed=seed, near_copy=near_copy, n_bootstrap=n_bootstrap)
    if llm_eval is not None or llm_reference is not None:
        if llm_eval is None or llm_reference is None:
            fail("the LLM's gap recovered needs both --llm-eval (tuned on real + synthetic, with its base) "
                 "and --llm-reference (tuned on real only)")
        result["llm_gap_recovered"] = llm_gap_recovered(Path(llm_eval), Path(llm_reference), seed=seed,
                                                        n_bootstrap=n_bootstrap)
    else:
        result["llm_gap_recovered"] = None
    result["verdict"] = overall_verdict(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        from evaluator.data_value_report import write_data_value_report

        out = Path(out_dir)
        result["figures"] = write_data_value_report(out, result, plots)
        write_json_atomic(out / "data_value.json", result)
    return result


# ---- one language --------------------------------------------------------------------------------
def _language(
    task: Task, lang: str, real: list[Record], held: list[Record], synth: list[Record],
    seeds: list[Record] | None, *, k: int, seed: int, near_copy: float, n_bootstrap: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    held_texts = {normalise_text(r.text) for r in held}
    overlap = [r for r in synth if normalise_text(r.text) in held_texts]
    out: dict[str, Any] = {"n": {"real": len(real), "eval": len(held), "synthetic": len(synth),
                                 "synthetic_equal_to_eval": len(overlap)},
                           "notes": []}
    if overlap:
        out["notes"].append(f"{len(overlap)} synthetic texts equal an eval text (contamination): left out of "
                            "the utility training sets")
    plot: dict[str, Any] = {}
    started = time.perf_counter()
    if synth and real:
        out["fidelity"], plot = _fidelity(task, lang, real, synth, seeds, k=k, seed=seed, near_copy=near_copy)
    else:
        out["fidelity"] = None
        out["notes"].append("no synthetic samples" if not synth else "no real records to compare with")
    middle = time.perf_counter()
    usable = [r for r in synth if normalise_text(r.text) not in held_texts]
    out["utility"] = _utility(task, lang, real, held, usable, seed=seed, n_bootstrap=n_bootstrap) if held else None
    out["seconds"] = {"fidelity": round(middle - started, 1), "utility": round(time.perf_counter() - middle, 1)}
    if not held:
        out["notes"].append("no eval records: no utility")
    out["gap_recovered"] = classifier_gap(out["utility"]) if out["utility"] else None
    out["verdict"] = language_verdict(lang, out)
    return out, plot


def _subsample(items: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def _fidelity(
    task: Task, lang: str, real: list[Record], synth: list[Record], seeds: list[Record] | None, *,
    k: int, seed: int, near_copy: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _utility(task: Task, lang: str, real: list[Record], held: list[Record], synth: list[Record], *,
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


# ---- verdicts ------------------------------------------------------------------------------------
def _pts(x: float) -> str:
    return f"{100 * x:+.1f} points"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def language_verdict(lang: str, out: dict[str, Any]) -> str:
    """One sentence from the numbers: fidelity, near-copies, utility (the thresholds are in the docs)."""
    n = out["n"]["synthetic"]
    if not n:
        return f"{lang}: no synthetic samples."
    parts = []
    fid = out["fidelity"]
    if fid:
        dist = fid["distribution"]
        if dist is None:
            parts.append(f"too few samples ({n}) for MAUVE and precision/recall")
        else:
            p, r, m = dist["precision"], dist["recall"], dist["mauve"]["score"]
            numbers = f"precision {p:.2f}, recall {r:.2f}, MAUVE {m:.2f}"
            if dist["real_vs_real"]:
                ref = dist["real_vs_real"]
                numbers += f"; real vs real {ref['precision']:.2f} / {ref['recall']:.2f} / {ref['mauve']:.2f}"
            if p < 0.5 or m < 0.5:
                parts.append(f"lies largely outside the real data ({numbers})")
            elif r < 0.5:
                parts.append(f"looks like the real data but covers little of it ({numbers})")
            else:
                parts.append(f"looks like the real data and covers much of it ({numbers})")
        seed_copy, real_copy, own = fid["nearest_seed"], fid["nearest_real"], fid["real_self"]
        text = f"near-copies of seeds: {_pct(seed_copy['near_copy_share'])} ({seed_copy['near_copies']}/{n})"
        if real_copy["near_copies"] != seed_copy["near_copies"]:
            text += f", of any real text: {_pct(real_copy['near_copy_share'])}"
        if own.get("n"):
            text += f" (the real data's own rate: {_pct(own['near_copy_share'])})"
        parts.append(text)
    util = out["utility"]
    agreement = (util or {}).get("label_agreement")
    if agreement and agreement["n"] >= MIN_SAMPLES:
        a, ref = agreement["agreement"], agreement["real_eval_accuracy"]
        text = f"the real-data classifier agrees with {_pct(a)} of the synthetic labels ({_pct(ref)} on real eval items)"
        if a < ref - LABEL_DOUBT:
            text += ": many synthetic labels look wrong"
        parts.append(text)
    comp = (util or {}).get("comparisons", {})
    if "real_synthetic_vs_real" in comp:
        c = comp["real_synthetic_vs_real"]
        ci = f"95% CI [{100 * c['accuracy_delta_ci'][0]:+.1f}, {100 * c['accuracy_delta_ci'][1]:+.1f}]"
        stats = f"{_pts(c['accuracy_delta'])}, {ci}, McNemar p = {c['mcnemar_p']:.2g}"
        if c["mcnemar_p"] < 0.05 and c["accuracy_delta"] > 0:
            parts.append(f"adds utility: real + synthetic beats real only for the cheap classifier ({stats})")
        elif c["mcnemar_p"] < 0.05:
            parts.append(f"hurts: real + synthetic is below real only for the cheap classifier ({stats})")
        else:
            parts.append(f"no utility gain within the noise ({stats})")
    if "synthetic_vs_real" in comp:
        c, train = comp["synthetic_vs_real"], util["train"]
        text = (f"trained on synthetic alone the classifier gets {_pct(train['synthetic']['accuracy'])} "
                f"vs {_pct(train['real']['accuracy'])} on real")
        if c["mcnemar_p"] < 0.05 and c["accuracy_delta"] < 0:
            text += f" (significantly lower, p = {c['mcnemar_p']:.2g})"
        gap = (out["gap_recovered"] or {}).get("synthetic")
        if gap is not None:
            text += f", recovering {_pct(gap)} of the real data's gain over the majority class"
        parts.append(text)
    return f"{lang} ({n} synthetic): " + "; ".join(parts) + "."


def overall_verdict(result: dict[str, Any]) -> str:
    sentences = [v["verdict"] for v in result["by_lang"].values() if v["n"]["synthetic"]]
    if not sentences:
        return "No synthetic samples in any language: nothing to judge."
    llm = result.get("llm_gap_recovered")
    if llm and llm.get("gap_recovered") is not None:
        c = llm["data_vs_reference"]
        sentences.append(f"LLM: tuned on real + synthetic recovers {_pct(llm['gap_recovered'])} of the real-only "
                         f"tuning's gain over the base model ({_pts(c['accuracy_delta'])} vs real only, "
                         f"McNemar p = {c['mcnemar_p']:.2g}).")
    return " ".join(sentences)
