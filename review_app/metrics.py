"""Quality numbers over the decision log: throughput, acceptance by generation setting, agreement.

    summary(store)   # dict: counts, per-annotator throughput, acceptance per template / strategy,
                     # inter-annotator Cohen's kappa, model-vs-human agreement

A decision's *outcome* is what it says about the item: "reject", or the label it ends with
(approve keeps the claimed label, edit may change it). Agreement compares outcomes.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from review_app.store import ReviewStore


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters over the same items; None without items, 1.0 when both always
    give the one same answer (no chance correction possible, and they agree)."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def outcome(decision: dict[str, Any]) -> str:
    return "reject" if decision["action"] == "reject" else decision["label_after"]


def _model_label(record_json: str) -> str | None:
    for verdict in json.loads(record_json).get("verdicts", []):
        if verdict.get("name") == "self_consistency":
            return (verdict.get("details") or {}).get("majority")
    return None


def throughput(decided: list[dict[str, Any]], log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per annotator: decisions that count, undos, items per hour over their active span, and the
    median seconds between consecutive decisions (pauses over 10 minutes left out)."""
    times: dict[str, list[float]] = defaultdict(list)
    undos: Counter[str] = Counter()
    for d in log:
        times[d["annotator"]].append(d["created_at"])
        if d["action"] == "undo":
            undos[d["annotator"]] += 1
    counted = Counter(d["annotator"] for d in decided)
    rows = []
    for name in sorted(times):
        ts = sorted(times[name])
        gaps = sorted(b - a for a, b in pairwise(ts) if b - a <= 600)
        span_h = max(sum(gaps), 1.0) / 3600
        rows.append({
            "annotator": name, "decisions": counted[name], "undos": undos[name],
            "per_hour": round(counted[name] / span_h, 1) if gaps else None,
            "median_s": round(gaps[len(gaps) // 2], 1) if gaps else None,
        })
    return rows


def acceptance(decided: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per value of `key` (template_id, strategy): how many decisions accepted the item as is,
    after an edit, or rejected it. Low acceptance marks generation settings that waste reviewers' time."""
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for d in decided:
        groups[d[key] or "(none)"][d["action"]] += 1
    rows = []
    for value, c in sorted(groups.items()):
        total = sum(c.values())
        rows.append({key: value, "decisions": total, "approved": c["approve"], "edited": c["edit"],
                     "rejected": c["reject"], "acceptance": round((c["approve"] + c["edit"]) / total, 3),
                     "approved_as_is": round(c["approve"] / total, 3)})
    return rows


def inter_annotator(decided: list[dict[str, Any]]) -> dict[str, Any]:
    """Cohen's kappa on items with two or more counted decisions (first two annotators per item)."""
    by_item: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for d in decided:
        by_item[d["item_id"]].append(d)
    first, second = [], []
    for ds in by_item.values():
        if len(ds) >= 2:
            first.append(outcome(ds[0]))
            second.append(outcome(ds[1]))
    agree = sum(x == y for x, y in zip(first, second, strict=True))
    return {"items": len(first), "raw_agreement": round(agree / len(first), 3) if first else None,
            "kappa": None if not first else round(cohen_kappa(first, second), 3)}


def model_vs_human(decided: list[dict[str, Any]]) -> dict[str, Any]:
    """How often the model's self-consistency majority label matches the human's label (decisions
    that kept the item), and the generator's claimed label's survival rate."""
    model, human = [], []
    kept = claimed_kept = 0
    for d in decided:
        if d["action"] == "reject":
            continue
        kept += 1
        claimed_kept += d["label_after"] == d["claimed_label"]
        majority = _model_label(d["record_json"])
        if majority is not None:
            model.append(majority)
            human.append(d["label_after"])
    agree = sum(x == y for x, y in zip(model, human, strict=True))
    return {"items": len(model), "agreement": round(agree / len(model), 3) if model else None,
            "kappa": None if not model else round(cohen_kappa(model, human), 3),
            "claimed_label_kept": round(claimed_kept / kept, 3) if kept else None}


def summary(store: ReviewStore) -> dict[str, Any]:
    decided = store.counted_decisions()
    log = store.decision_log()
    return {
        "status": store.counts("status"), "label": store.counts("label"), "lang": store.counts("lang"),
        "throughput": throughput(decided, log),
        "acceptance_by_template": acceptance(decided, "template_id"),
        "acceptance_by_strategy": acceptance(decided, "strategy"),
        "inter_annotator": inter_annotator(decided),
        "model_vs_human": model_vs_human(decided),
    }
