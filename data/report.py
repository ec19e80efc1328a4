"""The EDA report (`<out>/eda/report.md`): tables from the stats, plots, and findings written from
the numbers (each finding is emitted only when its numbers say so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.io import write_json_atomic, write_text_atomic
from core.records import Record
from core.task_spec import Task
from data.eda import write_plots


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def findings(stats: dict[str, Any], task: Task, cleaning: dict | None, selection: dict | None) -> list[str]:
    """Statements that affect model performance, each backed by a number from `stats`."""
    out: list[str] = []
    langs = stats["languages"]
    shares = {lang: {lab: e["labels"].get(lab, 0) / max(1, e["rows"]) for lab in task.label_names}
              for lang, e in langs.items()}
    for lang, share in shares.items():
        top = max(share, key=share.get)
        low = min(share, key=share.get)
        if share[top] > 0.45 or share[low] < 0.15:
            out.append(f"**{lang}: labels are imbalanced**: {top} is {share[top]:.0%} and {low} only {share[low]:.0%} "
                       f"of {langs[lang]['rows']:,} rows; a model trained on the natural mix learns that prior, "
                       "so selection balances labels where the pool allows.")
    if len(shares) > 1 and "neutral" in task.label_names:
        neutral = {lang: s.get("neutral", 0) for lang, s in shares.items()}
        hi, lo = max(neutral, key=neutral.get), min(neutral, key=neutral.get)
        if neutral[hi] > 3 * max(neutral[lo], 0.01):
            out.append(f"**Label priors differ by language**: neutral is {neutral[hi]:.0%} of {hi} but {neutral[lo]:.0%} "
                       f"of {lo}; with natural proportions language alone would predict 'neutral', a shortcut.")
    for key, e in stats["sources"].items():
        n = e["rows"]
        if e["exact_duplicate_rows"] or e["near_duplicate_pairs"]:
            out.append(f"**{key}: duplicates**: {e['exact_duplicate_rows']} exact duplicate rows ({_pct(e['exact_duplicate_rows'], n)}) "
                       f"and {e['near_duplicate_pairs']} near-duplicate pairs ({e['near_duplicate_pairs_different_label']} of them "
                       "with different labels); duplicates inflate eval scores when they straddle the split.")
        if e["conflicting_label_groups"]:
            ex = e["conflict_examples"][0]
            out.append(f"**{key}: conflicting labels**: {e['conflicting_label_groups']} texts appear with different labels "
                       f"({e['conflicting_label_rows']} rows), e.g. \"{ex['text']}\" ({' / '.join(ex['labels'])}); "
                       "they are label noise and are removed.")
        if e["mojibake_lossy"] or e["mojibake_repairable"]:
            out.append(f"**{key}: encoding damage**: {e['mojibake_repairable']} rows repairable by ftfy, {e['mojibake_lossy']} "
                       "with lossy damage ftfy cannot undo (a byte was replaced, as in 'Sepp+ñl+ñ' for 'Seppälä'); "
                       "the latter are dropped rather than teaching the model broken names.")
        if n and e["urls"] / n > 0.2:
            out.append(f"**{key}: URLs and cashtags**: {_pct(e['urls'], n)} of rows carry a URL and {_pct(e['cashtags'], n)} "
                       "a cashtag; links carry no sentiment and cost tokens, so they are removed; cashtags name the "
                       "company and are kept.")
        if e["language_mismatch"]:
            ex = e["language_mismatch_examples"][0]
            out.append(f"**{key}: wrong language**: {e['language_mismatch']} rows are not {e['lang']} "
                       f"(e.g. \"{ex['text'][:80]}\", detected {ex['detected']}); they are removed.")
        if e["unmapped"]:
            out.append(f"**{key}: unmapped labels**: {e['unmapped']} rows with labels {e['unmapped_labels']} map to no task label.")
    for lang, e in langs.items():
        t = e["tokens"]
        if t["max"] > 2 * t["p95"]:
            out.append(f"**{lang}: long tail of lengths**: 95% of rows have at most {t['p95']} tokens but the longest has "
                       f"{t['max']}; a max sequence length near the p95 plus the prompt avoids padding waste.")
        if e["lowercase_only"] / max(1, e["rows"]) > 0.9 and e["spaced_punctuation"] / max(1, e["rows"]) > 0.5:
            out.append(f"**{lang}: preprocessed text**: {_pct(e['lowercase_only'], e['rows'])} of rows are all lower-case and "
                       f"{_pct(e['spaced_punctuation'], e['rows'])} have punctuation split off by word segmentation; "
                       f"{e['masked_names']} rows hold masked names and {e['emoticon_words']} emoticons spelled as words. "
                       "Real inputs are cased and untokenised, so the cleaner rejoins punctuation, restores emoticons and "
                       "puts one placeholder for masked names; case cannot be restored.")
        if "topics" in e:
            topics = e["topics"]
            top = max(topics, key=topics.get)
            out.append(f"**{lang}: skewed topics**: {top} is {_pct(topics[top], e['rows'])} of rows; "
                       + "; ".join(f"neutral is {_pct(c.get('neutral', 0), sum(c.values()))} of {t}"
                                   for t, c in e["label_by_topic"].items())
                       + ". Selection stratifies by topic within each label.")
    for o in stats["overlap"]:
        if o["exact"] or o["near"]:
            out.append(f"**{o['lang']}: train/eval pool overlap**: {o['exact']} exact and {o['near']} near-duplicate pairs between "
                       f"{o['train']} and {o['eval']}; these are kept out of training so eval stays unseen.")
    if cleaning:
        for lang, c in cleaning.items():
            out.append(f"**{lang}: cleaning** kept {c.get('output', 0):,} of {c.get('input', 0):,} rows ("
                       + ", ".join(f"{k} {v}" for k, v in c.items() if k not in {"input", "output"}) + ").")
    if selection:
        out.append(f"**Selection** ({selection['strategy']}, seed {selection['seed']}): "
                   + "; ".join(f"{lang} train {v['train']}, eval {v['eval']}" for lang, v in selection["languages"].items())
                   + f"; exact or near-duplicate pairs across train and eval: {selection['cross_split_pairs']}.")
    return out


def _table(rows: list[list[Any]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(stats: dict[str, Any], out: Path, task: Task, records_by_lang: dict[str, list[Record]],
                 tokenizer: Any, cleaning: dict | None = None, selection: dict | None = None) -> Path:
    """Write `out/report.md`, `out/stats.json` and the PNG plots; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(stats, records_by_lang, task, out, tokenizer)
    parts = [f"# EDA: {task.name}", "", "## Findings that affect model performance", ""]
    parts += [f"- {f}" for f in findings(stats, task, cleaning, selection)]
    for title, group in (("Per source", stats["sources"]), ("Per language", stats["languages"])):
        rows = [[k, e["rows"], ", ".join(f"{lab} {_pct(c, e['rows'])}" for lab, c in e["labels"].items()),
                 f"{e['chars']['median']} / {e['chars']['p95']} / {e['chars']['max']}",
                 f"{e['tokens']['median']} / {e['tokens']['p95']} / {e['tokens']['max']}",
                 e["exact_duplicate_rows"], e["near_duplicate_pairs"], e["conflicting_label_groups"],
                 f"{e['mojibake_repairable']} / {e['mojibake_lossy']}", e["urls"], e["cashtags"], e["emoji"],
                 e["numbers"], e["language_mismatch"]] for k, e in group.items()]
        parts += ["", f"## {title}", "", _table(rows, [
            "group", "rows", "labels", "chars med/p95/max", "tokens med/p95/max", "exact dup rows",
            "near-dup pairs", "conflicts", "mojibake fixable/lossy", "URLs", "cashtags", "emoji", "numbers",
            "wrong language"])]
    for lang, e in stats["languages"].items():
        parts += ["", f"## Top n-grams per label ({lang})", ""]
        parts += [f"- **{lab}**: " + ", ".join(f"{g} ({c})" for g, c in grams) for lab, grams in e["top_ngrams"].items()]
        if "label_by_topic" in e:
            rows = [[t, *(c.get(lab, 0) for lab in task.label_names), sum(c.values())]
                    for t, c in e["label_by_topic"].items()]
            parts += ["", f"### Label by topic ({lang})", "", _table(rows, ["topic", *task.label_names, "rows"])]
    if stats["overlap"]:
        parts += ["", "## Overlap between train and eval pools", "",
                  _table([[o["lang"], o["train"], o["eval"], o["exact"], o["near"]] for o in stats["overlap"]],
                         ["lang", "train pool", "eval pool", "exact pairs", "near pairs"])]
    if cleaning:
        steps = sorted({k for c in cleaning.values() for k in c})
        parts += ["", "## Cleaning (rows affected per step)", "",
                  _table([[s, *(cleaning[lang].get(s, 0) for lang in cleaning)] for s in steps], ["step", *cleaning])]
    parts += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(parts) + "\n")
    write_json_atomic(out / "stats.json", {"stats": stats, "cleaning": cleaning, "selection": selection})
    return path
