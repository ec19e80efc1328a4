"""EDA: numbers per language and per source, PNG plots, and a report whose findings come from them.

    stats = compute_stats(sources, task, tokenizer)
    write_report(stats, out_dir / "eda", cleaning=..., selection=...)   # report.md + *.png

`python -m data eda` and `notebooks/eda.ipynb` both call these functions.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.records import Record
from core.task_spec import Task
from data import textstats
from data.dedup import DEFAULT_THRESHOLD, NearDuplicateIndex, conflicting_groups, cross_pairs, exact_groups
from data.sources import Source

_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    ["the", "a", "an", "of", "to", "in", "on", "for", "and", "is", "are", "was", "were", "be", "by", "with", "from", "at", "as", "its", "it", "that", "this", "has", "have", "had", "will", "said", "s", "mn", "eur", "million", "rt", "https", "t", "co", "và", "của", "là", "có", "các", "được", "cho", "những", "với", "này", "trong", "thì", "không"]
)


def _dist(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "mean": 0}
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered), "mean": round(statistics.fmean(ordered), 1),
            "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)], "max": ordered[-1]}


def group_stats(records: list[Record], task: Task, tokenizer: Any, threshold: float) -> dict[str, Any]:
    """Every per-group number of the report, for one source or one whole language."""
    n = len(records)
    texts = [r.text for r in records]
    label = task.label_name
    tokens = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []
    mojibake = Counter(textstats.mojibake(t) for t in texts)
    mismatched = []
    for r in tqdm(records, desc="language ID", unit="row", leave=False, disable=n < 2000):
        ok, how = textstats.language_check(r.text, r.lang)
        if not ok:
            mismatched.append({"text": r.text[:120], "detected": how, "label": r.labels[label]})
    exact = exact_groups(records)
    conflicts = conflicting_groups(records, label)
    near = NearDuplicateIndex(texts, threshold).pairs() if n > 1 else []
    near_diff = [(i, j) for i, j, s in near if s < 1 and records[i].labels[label] != records[j].labels[label]]
    stats: dict[str, Any] = {
        "rows": n,
        "labels": dict(Counter(r.labels[label] for r in records).most_common()),
        "chars": _dist([len(t) for t in texts]),
        "tokens": _dist(tokens),
        "exact_duplicate_rows": sum(len(g) - 1 for g in exact),
        "conflicting_label_groups": len(conflicts),
        "conflicting_label_rows": sum(len(g) for g in conflicts),
        "conflict_examples": [{"text": records[g[0]].text[:120], "labels": sorted({records[i].labels[label] for i in g})}
                              for g in conflicts[:3]],
        "near_duplicate_pairs": sum(1 for *_, s in near if s < 1),
        "near_duplicate_pairs_different_label": len(near_diff),
        "near_duplicate_examples": [[records[i].text[:100], records[j].text[:100]] for i, j, s in near if s < 1][:3],
        "mojibake_repairable": mojibake["repairable"],
        "mojibake_lossy": mojibake["lossy"],
        "mojibake_examples": [t[:100] for t in texts if textstats.mojibake(t)][:3],
        "urls": sum(map(textstats.has_url, texts)),
        "cashtags": sum(map(textstats.has_cashtag, texts)),
        "emoji": sum(map(textstats.has_emoji, texts)),
        "numbers": sum(map(textstats.has_number, texts)),
        "language_mismatch": len(mismatched),
        "language_mismatch_examples": mismatched[:5],
        "masked_names": sum(bool(textstats.MASKED_NAME.search(t)) for t in texts),
        "emoticon_words": sum(bool(textstats.EMOTICON_WORD.search(t)) for t in texts),
        "lowercase_only": sum(t == t.lower() for t in texts),
        "spaced_punctuation": sum(bool(textstats.SPACED_PUNCT.search(t)) for t in texts),
    }
    topics = [r.meta.get("topic") for r in records if r.meta.get("topic")]
    if topics:
        stats["topics"] = dict(Counter(topics).most_common())
        table: dict[str, Counter] = defaultdict(Counter)
        for r in records:
            table[r.meta.get("topic", "?")][r.labels[label]] += 1
        stats["label_by_topic"] = {t: dict(c) for t, c in sorted(table.items())}
    return stats


def top_ngrams(records: list[Record], task: Task, k: int = 10) -> dict[str, list[tuple[str, int]]]:
    """The n-grams (1 and 2 words) most typical of each label: count x log-lift over the label's prior."""
    per_label: dict[str, Counter] = defaultdict(Counter)
    total: Counter = Counter()
    for r in records:
        words = [w for w in _WORD.findall(r.text.lower()) if not w.isdigit()]
        grams = {w for w in words if w not in STOPWORDS}
        grams |= {f"{a} {b}" for a, b in itertools.pairwise(words) if not {a, b} <= STOPWORDS}
        per_label[r.labels[task.label_name]].update(grams)
        total.update(grams)
    n = len(records)
    min_count = 5 if n > 500 else 2
    out = {}
    for label, counts in per_label.items():
        prior = sum(1 for r in records if r.labels[task.label_name] == label) / n
        scored = [(g, c, c * math.log((c / total[g]) / prior)) for g, c in counts.items()
                  if c >= min_count and c / total[g] > prior]
        out[label] = [(g, c) for g, c, _ in sorted(scored, key=lambda x: (-x[2], x[0]))[:k]]
    return out


def compute_stats(sources: list[Source], task: Task, tokenizer: Any,
                  threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Stats per source and per language, top n-grams per label, and train/eval pool overlap."""
    stats: dict[str, Any] = {"task": task.name, "sources": {}, "languages": {}, "overlap": []}
    for src in sources:
        entry = group_stats(src.records, task, tokenizer, threshold)
        entry.update(lang=src.lang, pool=src.pool, path=src.path, unmapped=len(src.unmapped),
                     unmapped_labels=dict(Counter(raw for _, raw in src.unmapped).most_common(10)))
        stats["sources"][src.key] = entry
    for lang in dict.fromkeys(s.lang for s in sources):
        recs = [r for s in sources if s.lang == lang for r in s.records]
        entry = group_stats(recs, task, tokenizer, threshold) if len(sources) > 1 else \
            dict(stats["sources"][sources[0].key])
        entry["top_ngrams"] = top_ngrams(recs, task)
        stats["languages"][lang] = entry
        for tr in (s for s in sources if s.lang == lang and s.pool == "train"):
            for ev in (s for s in sources if s.lang == lang and s.pool == "eval"):
                pairs = cross_pairs([r.text for r in tr.records], [r.text for r in ev.records], threshold)
                stats["overlap"].append({"lang": lang, "train": tr.key, "eval": ev.key,
                                         "exact": sum(1 for *_, s in pairs if s >= 1.0),
                                         "near": sum(1 for *_, s in pairs if s < 1.0)})
    return stats


# ---- plots ------------------------------------------------------------------------------------------
def write_plots(stats: dict[str, Any], records_by_lang: dict[str, list[Record]], task: Task, out: Path,
                tokenizer: Any) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    names = list(stats["sources"])
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names)), 4))
    width = 0.8 / len(task.label_names)
    for k, label in enumerate(task.label_names):
        shares = [stats["sources"][s]["labels"].get(label, 0) / max(1, stats["sources"][s]["rows"]) for s in names]
        ax.bar([i + k * width for i in range(len(names))], shares, width, label=label)
    ax.set_xticks([i + width for i in range(len(names))], names, rotation=15, fontsize=8)
    ax.set_ylabel("share of rows")
    ax.set_title("Label distribution per source")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "labels.png", dpi=90)
    plt.close(fig)
    files.append("labels.png")

    for unit in ("chars", "tokens"):
        fig, ax = plt.subplots(figsize=(7, 4))
        for lang, recs in records_by_lang.items():
            texts = [r.text for r in recs]
            values = ([len(t) for t in texts] if unit == "chars" else
                      [len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]])
            ax.hist(values, bins=50, alpha=0.6, label=f"{lang} (n={len(values)})")
        ax.set_xlabel(f"length in {unit}" + (" of the target tokenizer" if unit == "tokens" else ""))
        ax.set_ylabel("rows")
        ax.legend()
        ax.set_title(f"Text length ({unit})")
        fig.tight_layout()
        fig.savefig(out / f"length_{unit}.png", dpi=90)
        plt.close(fig)
        files.append(f"length_{unit}.png")

    for lang, entry in stats["languages"].items():
        if "label_by_topic" not in entry:
            continue
        topics = list(entry["label_by_topic"])
        grid = [[entry["label_by_topic"][t].get(label, 0) for label in task.label_names] for t in topics]
        fig, ax = plt.subplots(figsize=(6, 0.6 * len(topics) + 1.5))
        ax.imshow(grid, cmap="Blues")
        ax.set_xticks(range(len(task.label_names)), task.label_names)
        ax.set_yticks(range(len(topics)), topics)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_title(f"{lang}: label by topic")
        fig.tight_layout()
        fig.savefig(out / f"{lang}_label_by_topic.png", dpi=90)
        plt.close(fig)
        files.append(f"{lang}_label_by_topic.png")
    return files
