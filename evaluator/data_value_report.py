"""`report.md` and PNG figures of a data-value result (`evaluator.data_value.data_value` calls it).

    figures = write_data_value_report(out_dir, result, plots)   # -> {"similarity_en": "similarity_en.png", ...}

Figures (matplotlib Agg): `similarity_<lang>.png` (nearest-real and nearest-seed similarity histograms,
the real data's own curve and the near-copy threshold), `projection_<lang>.png` (2-D PCA of real and
synthetic features), `utility.png` (the cheap classifier's accuracy per training set, with CIs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.io import write_text_atomic
from evaluator.report import pyplot

CONDITION_NAMES = {"real": "real only", "synthetic": "synthetic only", "real_synthetic": "real + synthetic"}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(pair: list[float]) -> str:
    return f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def write_data_value_report(out: Path, result: dict[str, Any], plots: dict[str, Any]) -> dict[str, str]:
    """Write the figures and `report.md` into `out`; returns the figures' file names by key."""
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    for lang, data in result["by_lang"].items():
        if data["fidelity"]:
            figures[f"similarity_{lang}"] = plot_similarity(out, lang, data["fidelity"])
        if plots.get(lang, {}).get("projection"):
            figures[f"projection_{lang}"] = plot_projection(out, lang, plots[lang]["projection"])
    if any(d["utility"] for d in result["by_lang"].values()):
        figures["utility"] = plot_utility(out, result)
    counts = result["counts"]
    lines = [f"# Data value: {result['task']}", "", f"**Verdict.** {result['verdict']}", "",
             f"{counts['synthetic']} synthetic, {counts['real']} real training and {counts['eval']} real eval records; "
             f"seed {result['seed']}, k = {result['k']}, near-copy threshold cosine ≥ "
             f"{result['thresholds']['near_copy']}; {result['seconds']} s.", ""]
    lines += ["| input | path |", "|---|---|"]
    lines += [f"| {name} | `{path}` |" for name, path in result["inputs"].items() if path]
    lines.append("")
    if counts["real_dropped_synthetic_source"]:
        lines += [f"{counts['real_dropped_synthetic_source']} records of the real file are synthetic "
                  "(`source`) and were left out of the real set.", ""]
    for lang, data in result["by_lang"].items():
        lines += _language(lang, data, figures)
    lines += _llm(result.get("llm_gap_recovered"))
    if "utility" in figures:
        lines += ["## Utility across languages", "", f"![utility]({figures['utility']})", ""]
    lines += _how_to_read(result)
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines).rstrip() + "\n")
    return figures


def _language(lang: str, data: dict[str, Any], figures: dict[str, str]) -> list[str]:
    n = data["n"]
    lines = [f"## {lang}", "", f"{n['synthetic']} synthetic, {n['real']} real, {n['eval']} eval records. "
             f"{data['verdict']}", ""]
    lines += [f"- {note}" for note in data["notes"]] + ([""] if data["notes"] else [])
    fid = data["fidelity"]
    if fid:
        lines += [f"### Fidelity and diversity ({fid['features']['description']})", ""]
        dist = fid["distribution"]
        if dist is None:
            lines += [fid["distribution_note"] + ".", ""]
        else:
            ref = dist["real_vs_real"] or {}
            lines += [f"Equal-size seeded subsamples of {dist['n']} per set.", "",
                      "| measure | synthetic vs real | real vs real (same size) |", "|---|---|---|",
                      f"| MAUVE | {_num(dist['mauve']['score'])} | {_num(ref.get('mauve'))} |",
                      f"| k-NN precision (synthetic inside the real manifold) | {_num(dist['precision'])} | "
                      f"{_num(ref.get('precision'))} |",
                      f"| k-NN recall (real covered by synthetic) | {_num(dist['recall'])} | {_num(ref.get('recall'))} |",
                      f"| Vendi score (synthetic / real) | {dist['vendi']['synthetic']:.1f} | {dist['vendi']['real']:.1f} |",
                      ""]
        lines += ["| nearest-neighbour cosine | n | mean | median | p90 | max | near-copies |", "|---|---|---|---|---|---|---|"]
        for name, key in (("synthetic → nearest real", "nearest_real"), ("synthetic → nearest seed", "nearest_seed"),
                          ("real → nearest other real", "real_self")):
            s = fid[key]
            if s.get("n"):
                lines.append(f"| {name} | {s['n']} | {s['mean']:.3f} | {s['median']:.3f} | {s['p90']:.3f} | "
                             f"{s['max']:.3f} | {s['near_copies']} ({_pct(s['near_copy_share'])}) |")
        lines += ["", f"Seeds: {fid['nearest_seed']['seeds']}.", ""]
        bal = fid["labels"]
        lines += ["| label | synthetic | real |", "|---|---|---|"]
        lines += [f"| {label} | {bal['synthetic'][label]} ({_pct(bal['synthetic_share'][label])}) | "
                  f"{bal['real'][label]} ({_pct(bal['real_share'][label])}) |" for label in bal["synthetic"]]
        lines += ["", f"Total variation distance of the label mix: {bal['total_variation']:.3f} (0 = the same mix).", ""]
        ls, lr = fid["length"]["synthetic"], fid["length"]["real"]
        d = fid["distinct"]
        lines += ["| | words mean | words median (p10-p90) | chars mean | distinct-1 | distinct-2 | distinct-3 |",
                  "|---|---|---|---|---|---|---|"]
        for name, length in (("synthetic", ls), ("real", lr)):
            lines.append(f"| {name} | {length['words_mean']:.1f} | {length['words_median']:.0f} "
                         f"({length['words_p10']:.0f}-{length['words_p90']:.0f}) | {length['chars_mean']:.0f} | "
                         + " | ".join(f"{d[name][f'distinct_{j}']:.3f}" for j in (1, 2, 3)) + " |")
        lines += ["", f"distinct-n over {d['n']} texts of each (equal sizes: distinct-n falls as a set grows).", ""]
    util = data["utility"]
    if util:
        lines += [f"### Utility: {util['classifier']}", "", f"Tested on the {n['eval']} real eval records.", "",
                  "| trained on | n | accuracy (95% CI) | macro-F1 (95% CI) |", "|---|---|---|---|"]
        for name, row in util["train"].items():
            if row:
                lines.append(f"| {CONDITION_NAMES[name]} | {row['n_train']} | {_pct(row['accuracy'])} "
                             f"{_ci(row['accuracy_ci'])} | {_pct(row['macro_f1'])} {_ci(row['macro_f1_ci'])} |")
            else:
                lines.append(f"| {CONDITION_NAMES[name]} | 0 | - | - |")
        lines += [f"| majority class (`{util['majority']['label']}`) | - | {_pct(util['majority']['accuracy'])} | |", ""]
        agreement = util.get("label_agreement")
        if agreement:
            lines += [f"Label check: the classifier trained on real data gives {_pct(agreement['agreement'])} of the "
                      f"{agreement['n']} synthetic samples their label; on the real eval items it is right "
                      f"{_pct(agreement['real_eval_accuracy'])} of the time.", ""]
        if util["comparisons"]:
            lines += ["| paired, same eval items | Δ accuracy | 95% CI | McNemar p | only first right | only second right |",
                      "|---|---|---|---|---|---|"]
            for c in util["comparisons"].values():
                lines.append(f"| {CONDITION_NAMES[c['b']]} vs {CONDITION_NAMES[c['a']]} | "
                             f"{100 * c['accuracy_delta']:+.1f} | [{100 * c['accuracy_delta_ci'][0]:+.1f}, "
                             f"{100 * c['accuracy_delta_ci'][1]:+.1f}] | {c['mcnemar_p']:.3g} | {c['only_a']} | "
                             f"{c['only_b']} |")
            lines.append("")
    gap = data["gap_recovered"]
    if gap and n["synthetic"]:
        lines += [f"Gap recovered (classifier; base: {gap['base']} {_pct(gap['base_score'])}, reference: "
                  f"{gap['reference']} {_pct(gap['reference_score'])}): synthetic only {_pct(gap['synthetic'])}, "
                  f"real + synthetic {_pct(gap['real_synthetic'])}." + (f" {gap['note']}." if gap.get("note") else ""), ""]
    for key in (f"similarity_{lang}", f"projection_{lang}"):
        if key in figures:
            lines += [f"![{key}]({figures[key]})", ""]
    return lines


def _llm(llm: dict[str, Any] | None) -> list[str]:
    if not llm:
        return ["## LLM gap recovered", "",
                "Not computed: pass `--llm-eval` (the evaluator folder of the model tuned on real + synthetic, with "
                "its base) and `--llm-reference` (the folder of the model tuned on real only).", ""]
    lines = ["## LLM gap recovered", "",
             f"Base: {llm['base']}; data: {llm['data']} (`{llm['tuned_dir']}`); reference: {llm['reference']} "
             f"(`{llm['reference_dir']}`).", "",
             "| eval | n | base | tuned on real + synthetic | tuned on real only | gap recovered | Δ vs real only (95% CI) | McNemar p |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in [("all", llm), *llm["by_lang"].items()]:
        c, acc = row["data_vs_reference"], row["accuracy"]
        lines.append(f"| {name} | {row['n']} | {_pct(acc['base'])} | {_pct(acc['data'])} | {_pct(acc['reference'])} | "
                     f"{_pct(row['gap_recovered'])} | {100 * c['accuracy_delta']:+.1f} "
                     f"[{100 * c['accuracy_delta_ci'][0]:+.1f}, {100 * c['accuracy_delta_ci'][1]:+.1f}] | "
                     f"{c['mcnemar_p']:.3g} |")
    return [*lines, ""]


def _how_to_read(result: dict[str, Any]) -> list[str]:
    lines = ["## How to read it", "",
              "- **MAUVE** (1 = indistinguishable), **k-NN precision** (share of synthetic samples inside the real "
              f"manifold) and **recall** (share of real samples inside the synthetic manifold; k = {result['k']}) "
              "depend on the sample size: compare them with the real-vs-real column, what two real samples of the "
              "same size score.",
              "- **Vendi score**: the effective number of distinct samples (1 = all the same).",
              f"- **Near-copies**: cosine ≥ {result['thresholds']['near_copy']} to the nearest seed or real text; the "
              "real data's own rate is what distinct real texts already show.",
              "- **Utility**: the cheap classifier trained on each set and tested on the real eval split; the paired "
              "tests say whether a difference exceeds the noise of this eval split.",
              "- **Gap recovered** (AgoraBench): (score trained on the data − base) / (reference − base); 100% = as "
              "good as the reference. Definitions: docs/evaluation.md, \"Data value\".", ""]
    return lines


# ---- figures -------------------------------------------------------------------------------------
def plot_similarity(out: Path, lang: str, fid: dict[str, Any]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, name, color in (("nearest_real", "synthetic → nearest real", "tab:blue"),
                             ("nearest_seed", "synthetic → nearest seed", "tab:orange")):
        s = fid[key]
        if s.get("n"):
            edges, counts = s["histogram"]["edges"], s["histogram"]["counts"]
            share = [c / s["n"] for c in counts]
            ax.bar(edges[:-1], share, width=edges[1] - edges[0], align="edge", alpha=0.5, color=color, label=name)
    own = fid["real_self"]
    if own.get("n"):
        edges = own["histogram"]["edges"]
        ax.step(edges[:-1], [c / own["n"] for c in own["histogram"]["counts"]], where="post", color="black",
                label="real → nearest other real")
    ax.axvline(fid["nearest_real"]["threshold"], color="red", linestyle="--", label="near-copy threshold")
    ax.set_xlabel(f"cosine similarity ({fid['features']['kind']})")
    ax.set_ylabel("share of samples")
    ax.set_title(f"{lang}: similarity to the nearest real text and seed")
    ax.legend(fontsize=7, loc="upper left")
    return _save(plt, fig, out / f"similarity_{lang}.png")


def plot_projection(out: Path, lang: str, proj: dict[str, Any]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    real = proj["real"]
    ax.scatter(real[:, 0], real[:, 1], s=6, color="lightgrey", label=f"real ({len(real)})")
    labels = proj["synthetic_labels"]
    synth = proj["synthetic"]
    for label in sorted(set(labels)):
        keep = [i for i, x in enumerate(labels) if x == label]
        ax.scatter(synth[keep, 0], synth[keep, 1], s=12, label=f"synthetic {label} ({len(keep)})")
    ax.set_title(f"{lang}: PCA of real and synthetic features")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best")
    return _save(plt, fig, out / f"projection_{lang}.png")


def plot_utility(out: Path, result: dict[str, Any]) -> str:
    plt = pyplot()
    langs = [lang for lang, d in result["by_lang"].items() if d["utility"]]
    conditions = list(CONDITION_NAMES)
    width = 0.8 / len(conditions)
    fig, ax = plt.subplots(figsize=(2.5 + 2.0 * len(langs), 3.6))
    for j, cond in enumerate(conditions):
        xs, acc, low, high = [], [], [], []
        for i, lang in enumerate(langs):
            row = result["by_lang"][lang]["utility"]["train"].get(cond)
            if row:
                xs.append(i + j * width)
                acc.append(row["accuracy"])
                low.append(row["accuracy"] - row["accuracy_ci"][0])
                high.append(row["accuracy_ci"][1] - row["accuracy"])
        if xs:
            ax.bar(xs, acc, width, yerr=[low, high], capsize=3, label=CONDITION_NAMES[cond])
    for i, lang in enumerate(langs):
        major = result["by_lang"][lang]["utility"]["majority"]["accuracy"]
        ax.hlines(major, i - width / 2, i + (len(conditions) - 0.5) * width, colors="grey", linestyles="--",
                  label="majority class" if i == 0 else None)
    ax.set_xticks([i + width * (len(conditions) - 1) / 2 for i in range(len(langs))], langs)
    ax.set_ylim(0, 1.25)  # headroom for the legend above the bars
    ax.set_ylabel("real eval accuracy")
    ax.set_title("cheap classifier trained on ...")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    return _save(plt, fig, out / "utility.png")


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
