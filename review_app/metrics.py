"""Quality numbers over the decision log: throughput, acceptance by generation setting, agreement.

    summary(store)   # dict: counts, per-annotator throughput, acceptance per template / strategy,
                     # inter-annotator agreement on the label (Krippendorff's alpha over all raters,
                     # Cohen's kappa per pair from scikit-learn) and on the decision, items that needed
                     # a third vote, reject reasons, model-vs-human agreement

A decision's *outcome* is what it says about the item: "reject", or the label it ends with
(approve keeps the claimed label, edit may change it). Agreement compares outcomes of independent
votes only: those cast while the item still lacked its votes, when every annotator is shown the
original alone. Tie-breaks and adjudicators' rulings see the other votes, so they are left out.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import combinations, pairwise
from typing import Any

from review_app.store import ReviewStore


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters over the same items (scikit-learn's); None without items or when
    it is undefined (both raters always give the one same answer: no chance correction possible)."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    if not a:
        return None
    if len(set(a) | set(b)) == 1:
        return None
    from sklearn.metrics import cohen_kappa_score

    value = float(cohen_kappa_score(list(a), list(b)))
    return None if math.isnan(value) else value


def krippendorff_alpha(ratings: dict[int, dict[str, str]]) -> float | None:
    """Krippendorff's alpha (nominal) from the `krippendorff` package over items rated by two or more
    people: `{item: {annotator: outcome}}`; any number of raters, each rating any subset of the items.
    None when there is nothing to compare or only one outcome occurs (alpha is undefined then)."""
    rated = {i: r for i, r in ratings.items() if len(r) >= 2}
    values = sorted({v for r in rated.values() for v in r.values()})
    if len(values) < 2:
        return None
    import krippendorff
    import numpy as np

    raters = sorted({a for r in rated.values() for a in r})
    code = {v: n for n, v in enumerate(values)}
    data = np.full((len(raters), len(rated)), np.nan)
    for col, r in enumerate(rated.values()):
        for a, v in r.items():
            data[raters.index(a), col] = code[v]
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


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


def acceptance(outcomes: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per value of `key` (template_id, strategy) over resolved items: how many ended approved (the
    original survived unchanged), edited (a reviewer's version won) or rejected. `acceptance` is
    (approved + edited) / resolved, `approved_as_is` approved / resolved. Low acceptance marks
    generation settings that waste reviewers' time."""
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for item in outcomes:
        if item["status"] in ("approved", "edited", "rejected"):
            groups[item[key] or "(none)"][item["status"]] += 1
    rows = []
    for value, c in sorted(groups.items()):
        total = sum(c.values())
        rows.append({key: value, "items": total, "approved": c["approved"], "edited": c["edited"],
                     "rejected": c["rejected"], "acceptance": round((c["approved"] + c["edited"]) / total, 3),
                     "approved_as_is": round(c["approved"] / total, 3)})
    return rows


def _agreement(ratings: dict[int, dict[str, str]]) -> dict[str, Any]:
    """Raw pairwise agreement, Krippendorff's alpha and Cohen's kappa per pair over `{item: {annotator:
    outcome}}`, on the items two or more people rated."""
    shared = {i: r for i, r in ratings.items() if len(r) >= 2}
    agree = total = 0
    for r in shared.values():
        for x, y in combinations(list(r.values()), 2):
            agree, total = agree + (x == y), total + 1
    pairs = []
    names = sorted({a for r in shared.values() for a in r})
    for a, b in combinations(names, 2):
        both = [r for r in shared.values() if a in r and b in r]
        if len(both) >= 2:
            kappa = cohen_kappa([r[a] for r in both], [r[b] for r in both])
            pairs.append({"a": a, "b": b, "items": len(both), "kappa": None if kappa is None else round(kappa, 3),
                          "raw_agreement": round(sum(r[a] == r[b] for r in both) / len(both), 3)})
    alpha = krippendorff_alpha(shared)
    return {"items": len(shared), "raters": len(names), "raw_agreement": round(agree / total, 3) if total else None,
            "alpha": None if alpha is None else round(alpha, 3), "pairs": pairs}


def inter_annotator(decided: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement between people on items that two or more of them decided independently (tie-breaks
    and adjudicators' rulings left out: they saw the other votes), on the **label** (reject, or the label
    voted for: `alpha`, Krippendorff's over all raters; `pairs`, Cohen's kappa for each two annotators
    who decided two or more of the same items; `raw_agreement`, the share of agreeing pairs of votes)
    and on the **decision** (`decision`: reject, or the exact version voted for, which is what resolves
    an item: an approval and an edit that keeps the label agree on the label, not on the decision)."""
    labels: dict[int, dict[str, str]] = defaultdict(dict)
    versions: dict[int, dict[str, str]] = defaultdict(dict)
    for d in decided:
        if d.get("phase") == "independent":
            labels[d["item_id"]][d["annotator"]] = outcome(d)
            versions[d["item_id"]][d["annotator"]] = "reject" if d["action"] == "reject" else d["version"]
    decision = _agreement(versions)
    return {**_agreement(labels), "decision": {k: decision[k] for k in ("raw_agreement", "alpha")}}


def third_votes(outcomes: list[dict[str, Any]], decided: list[dict[str, Any]]) -> dict[str, int]:
    """Items whose independent votes did not settle them: settled by a tie-break or a ruling, or
    still waiting for one (`items`), out of the items that asked for two or more votes (`of`)."""
    ruled = {d["item_id"] for d in decided if d.get("phase") in ("tiebreak", "adjudication")}
    waiting = {o["id"] for o in outcomes if o["status"] == "disputed"
               or (o["status"] == "pending" and o["needed"] > o["base_needed"])}
    return {"items": len(ruled | waiting), "of": sum(o["base_needed"] >= 2 for o in outcomes)}


def reject_reasons(decided: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How often each reason was given for a reject vote that counts; '(none given)' when it was not."""
    counts = Counter(d["reason"] or "(none given)" for d in decided if d["action"] == "reject")
    return [{"reason": r, "votes": n} for r, n in counts.most_common()]


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
            "kappa": None if (k := cohen_kappa(model, human)) is None else round(k, 3),
            "claimed_label_kept": round(claimed_kept / kept, 3) if kept else None}


def summary(store: ReviewStore) -> dict[str, Any]:
    decided = store.counted_decisions()
    log = store.decision_log()
    outcomes = store.item_outcomes()
    status = store.counts("status")
    return {
        "status": status, "total": sum(status.values()),
        "label": store.counts("label"), "lang": store.counts("lang"),
        "throughput": throughput(decided, log),
        "acceptance_by_template": acceptance(outcomes, "template_id"),
        "acceptance_by_strategy": acceptance(outcomes, "strategy"),
        "inter_annotator": inter_annotator(decided),
        "third_vote": third_votes(outcomes, decided),
        "reject_reasons": reject_reasons(decided),
        "model_vs_human": model_vs_human(decided),
    }
