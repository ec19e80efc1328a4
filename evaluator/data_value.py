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

This module loads the inputs, runs the measures per language and words the verdicts; the measures
themselves (fidelity, utility, gap recovered) are in `evaluator.data_value_metrics`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import fail
from core.inputs import ColumnMap
from core.io import write_json_atomic
from core.records import Record, normalise_text
from core.task_spec import Task
from core.tasks import load_task
from evaluator.cheap_baseline import one_blas_thread
from evaluator.data_value_metrics import (
    MAX_SUBSAMPLE,
    MIN_SAMPLES,
    classifier_gap,
    language_fidelity,
    language_utility,
    llm_gap_recovered,
)
from evaluator.metrics import N_BOOTSTRAP
from evaluator.run import load_labelled

NEAR_COPY = 0.9  # cosine at or above which a sample counts as a near-copy (docs/evaluation.md: how it was set)
LABEL_DOUBT = 0.15  # label agreement this far below the real eval accuracy: the verdict doubts the labels
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
        out["fidelity"], plot = language_fidelity(task, lang, real, synth, seeds, k=k, seed=seed,
                                                  near_copy=near_copy)
    else:
        out["fidelity"] = None
        out["notes"].append("no synthetic samples" if not synth else "no real records to compare with")
    middle = time.perf_counter()
    usable = [r for r in synth if normalise_text(r.text) not in held_texts]
    out["utility"] = (language_utility(task, lang, real, held, usable, seed=seed, n_bootstrap=n_bootstrap)
                      if held else None)
    out["seconds"] = {"fidelity": round(middle - started, 1), "utility": round(time.perf_counter() - middle, 1)}
    if not held:
        out["notes"].append("no eval records: no utility")
    out["gap_recovered"] = classifier_gap(out["utility"]) if out["utility"] else None
    out["verdict"] = language_verdict(lang, out)
    return out, plot


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
