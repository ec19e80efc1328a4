"""Headline numbers of an evaluation, the paired comparison of two runs, and the whole loop's summary.

    row = headline(metrics["tuned"])                 # accuracy, its CI, macro-F1 (and per language)
    row = paired_headline(metrics["paired"])          # the paired statistics a reader compares
    row = compare_predictions(a / "predictions.jsonl", b / "predictions.jsonl", seed=0)
    row = data_value_headline(result, out_dir)       # the data-value report's headline numbers
    line = cost_line(manifest["usage"])              # what the synthetic samples cost, per stage
    print_summary(summary, auto_reviewer="auto")      # what `demo.py` prints at the end

`demo.py` runs the stages and writes `summary.json`; this module reads numbers out of the evaluator's
`metrics.json` / `predictions.jsonl` and prints them, so the stages and the reporting change apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import fail
from core.io import read_jsonl
from evaluator.metrics import paired_by_lang


def headline(m: dict[str, Any]) -> dict[str, Any]:
    """Accuracy, its confidence interval and macro-F1 of one model's metrics (and of each language)."""
    row = {"accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"], "macro_f1": m["macro_f1"]}
    if "by_lang" in m:
        row["by_lang"] = {lang: headline(v) for lang, v in m["by_lang"].items()}
    return row


def paired_headline(p: dict[str, Any]) -> dict[str, Any]:
    """The paired statistics of a comparison (and of each language): delta, its CI, McNemar's p."""
    keys = ("n", "accuracy_delta", "accuracy_delta_ci", "mcnemar_p", "base_only", "tuned_only")
    row = {k: p[k] for k in keys}
    if "by_lang" in p:
        row["by_lang"] = {lang: paired_headline(v) for lang, v in p["by_lang"].items()}
    return row


def compare_predictions(first: Path, second: Path, seed: int,
                        delta_is: str = "accuracy(real + curated) - accuracy(real only)") -> dict[str, Any]:
    """Paired comparison of two tuned models' predictions on the same eval items (second minus first)."""

    a, b = read_jsonl(first), read_jsonl(second)
    if [r["id"] for r in a] != [r["id"] for r in b]:
        fail(f"{first} and {second}: not the same eval items in the same order")
    gold, langs = [r["gold"] for r in a], [r["lang"] for r in a]
    paired = paired_by_lang(gold, [r["tuned"]["label"] for r in a], [r["tuned"]["label"] for r in b], langs,
                            seed=seed)
    return {"delta_is": delta_is, **paired_headline(paired)}


def data_value_headline(result: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """The numbers `demo.py` prints from a data-value result (`evaluator.data_value`), per language."""
    out: dict[str, Any] = {"verdict": result["verdict"], "report": str(Path(out_dir) / "report.md"),
                           "json": str(Path(out_dir) / "data_value.json"), "by_lang": {}}
    for lang, v in result["by_lang"].items():
        if not v["n"]["synthetic"]:
            continue
        fid, util = v["fidelity"] or {}, v["utility"] or {}
        dist = fid.get("distribution") or {}
        comp = util.get("comparisons", {}).get("real_synthetic_vs_real")
        out["by_lang"][lang] = {
            "synthetic": v["n"]["synthetic"], "mauve": (dist.get("mauve") or {}).get("score"),
            "precision": dist.get("precision"), "recall": dist.get("recall"),
            "near_copies_of_seeds": (fid.get("nearest_seed") or {}).get("near_copy_share"),
            "utility_delta": comp and comp["accuracy_delta"], "utility_delta_ci": comp and comp["accuracy_delta_ci"],
            "utility_p": comp and comp["mcnemar_p"],
            "gap_recovered_classifier": (v["gap_recovered"] or {}).get("synthetic"),
        }
    llm = result.get("llm_gap_recovered")
    out["llm_gap_recovered"] = llm and {"gap_recovered": llm["gap_recovered"],
                                        "delta_vs_real_only": llm["data_vs_reference"]["accuracy_delta"],
                                        "mcnemar_p": llm["data_vs_reference"]["mcnemar_p"]}
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def cost_line(usage: dict[str, Any]) -> str:
    """What generating and validating the synthetic samples cost, per stage (a run manifest's `usage`)."""
    def cost(row: dict[str, Any]) -> str:
        if row.get("cost_usd") is None:
            return "cost unknown"
        return "$0, local" if set(row.get("cost_sources") or {}) <= {"local"} else f"${row['cost_usd']:.4f}"

    parts = [f"{name} {row['prompt_tokens'] + row['completion_tokens']} tokens"
             + (f" / {row['texts']} texts" if row.get("texts") else "") + f", {row['seconds']:.0f} s"
             for name, row in usage.get("stages", {}).items()]
    total = usage.get("total", {})
    return (f"cost      {total.get('prompt_tokens', 0)} tokens in / {total.get('completion_tokens', 0)} out, "
            f"{total.get('seconds', 0):.0f} s, {cost(total)} (prices as of {usage.get('prices', {}).get('as_of')}): "
            + "; ".join(parts))


def print_summary(s: dict[str, Any], auto_reviewer: str) -> None:
    """The loop's headline numbers and artifact paths from `summary.json`'s content.

    `auto_reviewer` is the name the unattended (demo-only) review step decides under.
    """
    ev, gen, rev = s["eval"], s["synthetic"], s["review"]
    print("\n== summary" + (" (tiny model: random weights, the numbers prove the pipeline, not a model)"
                            if s["tiny_model"] else ""))
    print(f"data      {s['data']['train']} train / {s['data']['eval']} eval real records from {s['source']}")
    print(f"synthetic {gen['generated']} generated, {gen['parsed']} parsed, {gen['validated_accepted']} passed "
          f"the validators and were queued; "
          f"{'people' if rev['reviewer'] == 'people' else repr(auto_reviewer) + ' (DEMO ONLY)'} approved "
          f"{rev.get('approved', 0)}, rejected {rev.get('rejected', 0)}; {s['export']['records']} curated")
    for name, v in gen.get("validators", {}).items():  # why the rest failed, validator by validator
        if v.get("skipped"):
            print(f"          {name:<17} skipped: {v['skipped']}")
            continue
        if v.get("abstained"):
            print(f"          {name:<17} abstained on {v['abstained']}: {v.get('abstained_because', '')}")
            continue
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(v.get("rules", {}).items(), key=lambda kv: -kv[1]))
        print(f"          {name:<17} {v.get('passed', 0)}/{v.get('checked', 0)} passed" + (f"; failed: {rules}" if rules else ""))
    if gen.get("cost"):
        print(cost_line(gen["cost"]))
    print(f"train     {s['train']['records']} records, {s['train']['steps']} steps, {s['train']['wall_clock_s']} s")
    langs = ["all", *sorted(ev["tuned"].get("by_lang", {}))]
    cheap, vs_cheap = ev.get("baseline"), ev.get("paired_baseline")
    print(f"{'eval':<10}{'n':>5} {'majority':>9} {'cheap acc':>10} {'base acc':>9} {'tuned acc':>10} {'base F1':>8} "
          f"{'tuned F1':>9} {'McNemar p':>10} {'p vs cheap':>11}")
    for lang in langs:
        pick = (lambda m, lang=lang: m if lang == "all" else m["by_lang"][lang])  # noqa: E731
        base, tuned, paired, major = pick(ev["base"]), pick(ev["tuned"]), pick(ev["paired"]), pick(ev["majority"])
        print(f"{lang:<10}{paired['n']:>5} {_pct(major['accuracy']):>9} "
              f"{_pct(pick(cheap)['accuracy'] if cheap else None):>10} {_pct(base['accuracy']):>9} "
              f"{_pct(tuned['accuracy']):>10} {base['macro_f1']:>8.3f} {tuned['macro_f1']:>9.3f} "
              f"{paired['mcnemar_p']:>10.3g} {format(pick(vs_cheap)['mcnemar_p'], '.3g') if vs_cheap else '-':>11}")
    if cheap:
        print("cheap     = the cheap baseline: MiniLM (en) / char TF-IDF (vi) + logistic regression on the same "
              "training records; 'p vs cheap' = McNemar, tuned vs it")
    if s["ablation"]:
        c = s["ablation"]["comparison"]
        ci = c["accuracy_delta_ci"]
        print(f"ablation  real + curated minus real only: {100 * c['accuracy_delta']:+.1f} points "
              f"(95% CI {100 * ci[0]:+.1f} to {100 * ci[1]:+.1f}), McNemar p {c['mcnemar_p']:.3g}")
        n = s["ablation"]["seed_control"]["comparison"]
        print(f"          noise floor, real only with another seed: {100 * n['accuracy_delta']:+.1f} points "
              f"(McNemar p {n['mcnemar_p']:.3g}); curated data: {s['export']['records']} records")
    else:
        print("ablation  not run (the default for a real model on a CPU): `python demo.py --ablation` adds the "
              "real-only training, its seed control and their evaluations")
    dv = s.get("data_value")
    if dv:
        print(f"data value {dv['verdict']}")
        for lang, v in dv["by_lang"].items():
            delta = "-" if v["utility_delta"] is None else f"{100 * v['utility_delta']:+.1f} points (p {v['utility_p']:.3g})"
            print(f"          {lang}: {v['synthetic']} synthetic, MAUVE {_num(v['mauve'])}, precision "
                  f"{_num(v['precision'])}, recall {_num(v['recall'])}, near-copies of seeds "
                  f"{_pct(v['near_copies_of_seeds'])}; cheap classifier real + synthetic vs real {delta}; "
                  f"gap recovered by synthetic alone {_pct(v['gap_recovered_classifier'])}")
        if dv.get("llm_gap_recovered") and dv["llm_gap_recovered"]["gap_recovered"] is not None:
            g = dv["llm_gap_recovered"]
            print(f"          LLM gap recovered (real + curated vs real only, over base): {_pct(g['gap_recovered'])}")
    print("\nartifacts:")
    for name, path in s["artifacts"].items():
        if path:
            print(f"  {name:<17} {path}")
    print(f"  {'summary':<17} {Path(s['out']) / 'summary.json'}")
    timing = ", ".join(f"{k} {v['seconds']} s" + (" (reused)" if v["reused"] else "")
                       for k, v in s["stages"].items())
    print(f"\ntime per stage: {timing}")
    print(f"review the queue yourself instead of '{auto_reviewer}': {s['review_app']}")
