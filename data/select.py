"""Stratified, seeded, leakage-free selection of train and eval records per language.

    train, evals, info = select(records, task, SelectConfig(train_per_lang=3000, eval_per_lang=250))

Label-balanced by default ('natural' is a flag away); eval is drawn first, and every train candidate
near a chosen eval row is removed before train is drawn. Why: docs/data.md#design-dataselectpy
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from core.errors import fail
from core.records import Record
from core.task_spec import Task
from data.dedup import DEFAULT_THRESHOLD, cross_pairs


@dataclass
class SelectConfig:
    train_per_lang: int = 3000
    eval_per_lang: int = 250
    strategy: Literal["balanced", "natural"] = "balanced"
    seed: int = 0
    near_threshold: float = DEFAULT_THRESHOLD


def allocate(available: dict[str, int], total: int, strategy: str) -> dict[str, int]:
    """How many rows to take from each stratum so that they sum to `total` (never above availability)."""
    if sum(available.values()) < total:
        raise ValueError("not enough rows")
    keys = sorted(available)
    if strategy == "natural":
        pool = sum(available.values())
        exact = {k: total * available[k] / pool for k in keys}
        alloc = {k: int(exact[k]) for k in keys}
        for k in sorted(keys, key=lambda k: (-(exact[k] - alloc[k]), k))[: total - sum(alloc.values())]:
            alloc[k] += 1
        return alloc
    alloc = dict.fromkeys(keys, 0)
    remaining = total
    while remaining:
        open_keys = [k for k in keys if alloc[k] < available[k]]
        share = max(1, remaining // len(open_keys))
        for k in open_keys:
            take = min(share, available[k] - alloc[k], remaining)
            alloc[k] += take
            remaining -= take
            if not remaining:
                break
    return alloc


def secondary_key(rec: Record) -> str:
    return str(rec.meta.get("topic") or rec.provenance.get("dataset", ""))


def stratified_sample(records: list[Record], n: int, task: Task, strategy: str, seed: str) -> list[Record]:
    by_label: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        by_label[rec.labels[task.label_name]].append(rec)
    chosen: list[Record] = []
    for label, quota in allocate({k: len(v) for k, v in by_label.items()}, n, strategy).items():
        by_sec: dict[str, list[Record]] = defaultdict(list)
        for rec in by_label[label]:
            by_sec[secondary_key(rec)].append(rec)
        for sec, k in allocate({s: len(v) for s, v in by_sec.items()}, quota, "natural").items():
            rng = random.Random(f"{seed}:{label}:{sec}")
            chosen += rng.sample(sorted(by_sec[sec], key=lambda r: r.id), k)
    return sorted(chosen, key=lambda r: r.id)


def select(records: list[Record], task: Task, cfg: SelectConfig) -> tuple[list[Record], list[Record], dict]:
    """(train, eval, info) with per-language counts; a UserError when a language has too few rows."""
    train: list[Record] = []
    evals: list[Record] = []
    info: dict = {"strategy": cfg.strategy, "seed": cfg.seed, "languages": {}}
    langs = [lang for lang in task.languages if any(r.lang == lang for r in records)]
    if not langs:
        fail(f"no clean records in any {task.name} language ({', '.join(task.languages)})")
    for lang in langs:
        recs = [r for r in records if r.lang == lang]
        if len(recs) < cfg.train_per_lang + cfg.eval_per_lang:
            fail(f"{lang}: only {len(recs)} clean rows for {cfg.train_per_lang} training + {cfg.eval_per_lang} eval "
                 "examples; lower --train-per-lang / --eval-per-lang or add sources")
        held_out = [r for r in recs if r.provenance.get("pool") == "eval"]
        eval_pool = held_out if len(held_out) >= cfg.eval_per_lang else recs
        if len(eval_pool) < cfg.eval_per_lang:
            fail(f"{lang}: only {len(eval_pool)} clean rows for {cfg.eval_per_lang} eval examples; "
                 "lower --eval-per-lang or add sources")
        chosen_eval = stratified_sample(eval_pool, cfg.eval_per_lang, task, cfg.strategy, f"{cfg.seed}:{lang}:eval")
        eval_ids = {r.id for r in chosen_eval}
        candidates = [r for r in recs if r.id not in eval_ids and r.provenance.get("pool") != "eval"]
        leaks = {i for i, _, _ in cross_pairs([r.text for r in candidates], [r.text for r in chosen_eval],
                                              cfg.near_threshold)}
        candidates = [r for i, r in enumerate(candidates) if i not in leaks]
        if len(candidates) < cfg.train_per_lang:
            fail(f"{lang}: only {len(candidates)} clean rows left for {cfg.train_per_lang} training examples "
                 f"(after cleaning and removing {len(leaks)} near copies of eval rows); lower --train-per-lang "
                 "or add sources")
        chosen_train = stratified_sample(candidates, cfg.train_per_lang, task, cfg.strategy,
                                         f"{cfg.seed}:{lang}:train")
        train += [r.model_copy(update={"split": "train"}) for r in chosen_train]
        evals += [r.model_copy(update={"split": "eval"}) for r in chosen_eval]
        info["languages"][lang] = {
            "eval_pool": "held-out split" if eval_pool is held_out else "clean pool",
            "eval_pool_rows": len(eval_pool), "train_candidates": len(candidates),
            "train_candidates_removed_as_eval_near_copies": len(leaks),
            "train": _label_counts(chosen_train, task), "eval": _label_counts(chosen_eval, task),
        }
    # Verified, not assumed: a full check of the final sets.
    info["cross_split_pairs"] = len(cross_pairs([r.text for r in train], [r.text for r in evals],
                                                cfg.near_threshold))
    return train, evals, info


def _label_counts(records: list[Record], task: Task) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for rec in records:
        counts[rec.labels[task.label_name]] += 1
    return dict(sorted(counts.items()))
