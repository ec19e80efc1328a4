"""`report.md` with its PNG figures: summary, paired statistics, per language and label, disagreements.

    write_report(out_dir, task, metrics, prediction_rows)

Figures use matplotlib's Agg backend (no display needed): `confusion_<model>.png` and `by_lang.png`.
"""

from __future__ import annotations

from pathlib import Path

from core.io import write_text_atomic
from core.task_spec import Task

MAX_DISAGREEMENTS = 40
MODELS = ("base", "tuned")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(pair: list[float]) -> str:
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def _cell(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_report(out: Path, task: Task, metrics: dict, rows: list[dict]) -> Path:
    """Write the figures and `report.md` into `out`; returns the report's path."""
    models = [m for m in MODELS if m in metrics]
    figures = [*plot_confusions(out, metrics, models), plot_by_lang(out, metrics, models)]
    lines = [f"# Evaluation: {task.name}", ""]
    lines += [f"Model `{metrics['model']}`" + (f", adapter `{metrics['adapter']}`" if metrics["adapter"] else "")
              + f"; mode `{metrics['mode']}` ({metrics['backend']} backend); {metrics['n']} held-out items; "
              f"seed {metrics['seed']}; base model shots: {metrics['shots']}.", ""]
    lines += _summary(metrics, models) + _paired(metrics) + _paired_baseline(metrics) + _by_lang(metrics, models)
    lines += _per_class(metrics, models)
    lines += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    lines += _prompts(metrics) + _disagreements(rows, models)
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines).rstrip() + "\n")
    return path


def _summary(metrics: dict, models: list[str]) -> list[str]:
    lines = ["## Summary", "", "| | accuracy (95% CI) | macro-F1 (95% CI) | invalid | items/s |", "|---|---|---|---|---|"]
    for name in models:
        m = metrics[name]
        lines.append(f"| {name} | {_pct(m['accuracy'])} {_ci(m['accuracy_ci'])} | {_pct(m['macro_f1'])} "
                     f"{_ci(m['macro_f1_ci'])} | {_pct(m['invalid_rate'])} | {m['items_per_s']:.1f} |")
    base = metrics["majority_baseline"]
    lines.append(f"| majority class (`{base['label']}`) | {_pct(base['accuracy'])} | | | |")
    cheap = metrics.get("baseline")
    if cheap:
        lines.append(f"| cheap baseline (classifier) | {_pct(cheap['accuracy'])} {_ci(cheap['accuracy_ci'])} | "
                     f"{_pct(cheap['macro_f1'])} {_ci(cheap['macro_f1_ci'])} | | |")
    else:
        lines.append(f"| cheap baseline | none: {metrics.get('baseline_note', 'not computed')} | | | |")
    lines.append("")
    for name in models:  # a model at the majority rate has learned the label prior, not the task
        margin = metrics[name]["accuracy"] - base["accuracy"]
        where = "above" if margin > 0 else "not above"
        lines.append(f"- {name} is **{where}** the majority class ({100 * margin:+.1f} points).")
    if cheap and metrics.get("paired_baseline"):
        pb = metrics["paired_baseline"]
        where = "above" if pb["accuracy_delta"] > 0 else "not above"
        sig = "significant" if pb["mcnemar_p"] < 0.05 else "not significant"
        lines.append(f"- {pb['model']} is **{where}** the cheap baseline ({100 * pb['accuracy_delta']:+.1f} points, "
                     f"McNemar p = {pb['mcnemar_p']:.3g}, {sig} at 5%).")
    if cheap:
        lines += ["", "Cheap baseline: " + "; ".join(f"{lang}: {v['classifier']}, trained on {v['train']} records"
                                                     for lang, v in cheap["classifiers"].items())
                  + (f"; no training records for {', '.join(cheap['missing_langs'])} (answered invalid)"
                     if cheap.get("missing_langs") else "") + "."]
    return [*lines, ""]


def _paired(metrics: dict) -> list[str]:
    if "paired" not in metrics:
        return []
    return _paired_section("Base vs tuned (paired, same items)", metrics["paired"], "base", "tuned")


def _paired_baseline(metrics: dict) -> list[str]:
    if not metrics.get("paired_baseline"):
        return []
    p = metrics["paired_baseline"]
    return _paired_section(f"Cheap baseline vs {p['model']} (paired, same items)", p, "baseline", p["model"])


def _paired_section(title: str, p: dict, first: str, second: str) -> list[str]:
    """A paired comparison (`base_only` = only `first` right, `tuned_only` = only `second` right)."""
    verdict = "significant at 5%" if p["mcnemar_p"] < 0.05 else "not significant at 5%"
    lines = [f"## {title}", "",
             f"Accuracy difference ({second} − {first}): **{100 * p['accuracy_delta']:+.1f} points**, paired bootstrap "
             f"95% CI [{100 * p['accuracy_delta_ci'][0]:+.1f}, {100 * p['accuracy_delta_ci'][1]:+.1f}]. "
             f"McNemar's exact test: p = {p['mcnemar_p']:.3g} ({verdict}).", "",
             f"| | n | both right | only {first} right | only {second} right | both wrong | Δ accuracy | 95% CI | "
             "McNemar p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in [("all", p), *sorted(p.get("by_lang", {}).items())]:
        lines.append(f"| {name} | {row['n']} | {row['both_correct']} | {row['base_only']} | {row['tuned_only']} | "
                     f"{row['both_wrong']} | {100 * row['accuracy_delta']:+.1f} | "
                     f"[{100 * row['accuracy_delta_ci'][0]:+.1f}, {100 * row['accuracy_delta_ci'][1]:+.1f}] | "
                     f"{row['mcnemar_p']:.3g} |")
    return [*lines, ""]


def _by_lang(metrics: dict, models: list[str]) -> list[str]:
    lines = ["## Per language", "", "| language | n | model | accuracy (95% CI) | macro-F1 | invalid | majority class |",
             "|---|---|---|---|---|---|---|"]
    rows = [*models, "baseline"] if metrics.get("baseline") else models
    for lang, base in sorted(metrics["majority_baseline"]["by_lang"].items()):
        for name in rows:
            m = metrics[name]["by_lang"][lang]
            lines.append(f"| {lang} | {m['n']} | {name} | {_pct(m['accuracy'])} {_ci(m['accuracy_ci'])} | "
                         f"{_pct(m['macro_f1'])} | {_pct(m['invalid_rate'])} | "
                         f"{_pct(base['accuracy'])} (`{base['label']}`) |")
    return [*lines, ""]


def _per_class(metrics: dict, models: list[str]) -> list[str]:
    lines = ["## Per label", "", "| label | support | " + " | ".join(f"{m} P / R / F1" for m in models) + " |",
             "|---|---|" + "---|" * len(models)]
    for label in metrics["labels"]:
        cells = []
        for name in models:
            c = metrics[name]["per_class"][label]
            cells.append(f"{c['precision']:.2f} / {c['recall']:.2f} / {c['f1']:.2f}")
        support = metrics[models[0]]["per_class"][label]["support"]
        lines.append(f"| {label} | {support} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _prompts(metrics: dict) -> list[str]:
    lines = ["## Prompts (first item, exactly as rendered)", ""]
    for name, prompt in metrics["prompts"].items():
        lines += [f"**{name}**", "", "```text", prompt["example_rendered"].rstrip(), "```", ""]
    lines.append("Every item's prompt, per model, is in `predictions.jsonl`.")
    return [*lines, ""]


def _disagreements(rows: list[dict], models: list[str]) -> list[str]:
    if len(models) < 2:
        return []
    differ = [r for r in rows if not r["agree"]]
    lines = ["## Items where the models disagree", "",
             f"{len(differ)} of {len(rows)} items" + (f" (first {MAX_DISAGREEMENTS} shown)"
                                                      if len(differ) > MAX_DISAGREEMENTS else "") + ".", "",
             "| id | lang | gold | base | tuned | text |", "|---|---|---|---|---|---|"]
    for r in differ[:MAX_DISAGREEMENTS]:
        marks = {m: ("✓ " if r[m]["correct"] else "✗ ") + r[m]["label"] for m in models}
        lines.append(f"| {r['id']} | {r['lang']} | {r['gold']} | {marks['base']} | {marks['tuned']} | {_cell(r['text'])} |")
    return [*lines, ""]


# ---- figures -------------------------------------------------------------------------------------
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusions(out: Path, metrics: dict, models: list[str]) -> list[str]:
    """One confusion matrix per model (rows: true label; columns: predicted, plus `invalid`)."""
    plt = pyplot()
    names = []
    for name in models:
        conf = metrics[name]["confusion"]
        fig, ax = plt.subplots(figsize=(1.2 * len(conf["columns"]) + 2, 0.9 * len(conf["rows"]) + 1.8))
        ax.imshow(conf["matrix"], cmap="Blues")
        ax.set_xticks(range(len(conf["columns"])), conf["columns"], rotation=30, ha="right")
        ax.set_yticks(range(len(conf["rows"])), conf["rows"])
        peak = max((max(row) for row in conf["matrix"]), default=0) or 1
        for i, row in enumerate(conf["matrix"]):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: accuracy {_pct(metrics[name]['accuracy'])}")
        fig.tight_layout()
        file = f"confusion_{name}.png"
        fig.savefig(out / file, dpi=110)
        plt.close(fig)
        names.append(file)
    return names


def plot_by_lang(out: Path, metrics: dict, models: list[str]) -> str:
    """Accuracy per language: each model (with its 95% CI) next to the majority-class baseline."""
    plt = pyplot()
    langs = sorted(metrics["majority_baseline"]["by_lang"])
    names = [*models, "baseline"] if metrics.get("baseline") else models
    series = [(name if name != "baseline" else "cheap baseline", [metrics[name]["by_lang"][lang] for lang in langs])
              for name in names]
    width = 0.8 / (len(series) + 1)
    fig, ax = plt.subplots(figsize=(2 + 1.8 * len(langs), 3.6))
    for k, (name, rows) in enumerate(series):
        xs = [i + k * width for i in range(len(langs))]
        acc = [r["accuracy"] for r in rows]
        err = [[a - r["accuracy_ci"][0] for a, r in zip(acc, rows, strict=True)],
               [r["accuracy_ci"][1] - a for a, r in zip(acc, rows, strict=True)]]
        ax.bar(xs, acc, width, yerr=err, capsize=3, label=name)
    majority = [metrics["majority_baseline"]["by_lang"][lang]["accuracy"] for lang in langs]
    ax.bar([i + len(series) * width for i in range(len(langs))], majority, width, label="majority class", color="grey")
    ax.set_xticks([i + len(series) * width / 2 for i in range(len(langs))], langs)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "by_lang.png", dpi=110)
    plt.close(fig)
    return "by_lang.png"
