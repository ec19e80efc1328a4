"""The arithmetic of generating to N accepted samples: label quotas, round sizes, and what to lean toward.

    quotas = label_quotas(10, ["positive", "negative", "neutral"])   # {"positive": 4, "negative": 3, "neutral": 3}
    tally = Tally.of(candidates, passed, task)                       # what the rounds so far produced
    size, labels = next_round(tally, quotas, delivered, budget=20, first=10, seed=0, round_=2, per_prompt=1)
    weights = acceptance_weights(tally, base=review_weights)         # PlanConfig.weights for the next round

Pure functions of what is on disk, so a killed run re-plans the same rounds. The controller that runs
them is `generator.acceptance`. Why these rules: docs/generation.md#exactly-n-accepted-samples
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.records import Record

# Pseudo-candidates behind a label's estimated yield, at the run's overall rate: a label's rate from a handful of
# candidates is noise (smollm2-135m, --accepted 20: 1 of 7 aimed at negative passed in round 1, 16 of 29 in
# round 2), and a round sized from it overshoots the other labels' quotas.
PRIOR = 5.0
ALPHA = BETA = 1.0  # Beta prior of the template / attribute-value weights, as review_app.weights uses


def label_quotas(n: int, labels: list[str]) -> dict[str, int]:
    """N split over the labels as evenly as it goes; the first labels (task order) take the remainder."""
    base, extra = divmod(n, len(labels))
    return {label: base + (1 if i < extra else 0) for i, label in enumerate(labels)}


def deliver(passed: list[Record], quotas: dict[str, int], label_name: str) -> tuple[list[Record], list[Record]]:
    """(delivered, surplus): samples that passed, in index order, while their label's quota has room."""
    room = dict(quotas)
    delivered, surplus = [], []
    for rec in sorted(passed, key=lambda r: r.provenance.get("index", 0)):
        label = rec.labels.get(label_name)
        if room.get(label, 0) > 0:
            room[label] -= 1
            delivered.append(rec)
        else:
            surplus.append(rec)
    return delivered, surplus


@dataclass
class Tally:
    """Counts over every validated candidate: overall, per target label, per template, per attribute value."""

    candidates: int = 0
    passed: int = 0
    targeted: Counter = field(default_factory=Counter)  # target label -> candidates aimed at it
    passed_label: Counter = field(default_factory=Counter)  # label written -> candidates that passed with it
    templates: dict[str, list[int]] = field(default_factory=dict)  # template -> [passed, candidates]
    attributes: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # name -> value -> [passed, candidates]

    @classmethod
    def of(cls, candidates: list[Record], passed_ids: set[str], label_name: str) -> Tally:
        """`candidates`: every generated row of the finished rounds (failed parses included)."""
        tally = cls()
        for rec in candidates:
            ok = int(bool(rec.text) and rec.id in passed_ids and not rec.provenance.get("error"))
            prov = rec.provenance
            tally.candidates += 1
            tally.passed += ok
            tally.targeted[prov.get("target_label")] += 1
            if ok:
                tally.passed_label[rec.labels.get(label_name)] += 1
            counts = tally.templates.setdefault(str(prov.get("template_id")), [0, 0])
            counts[0], counts[1] = counts[0] + ok, counts[1] + 1
            for name, value in (prov.get("attributes") or {}).items():
                counts = tally.attributes.setdefault(str(name), {}).setdefault(str(value), [0, 0])
                counts[0], counts[1] = counts[0] + ok, counts[1] + 1
        return tally

    @property
    def rate(self) -> float:
        """The acceptance rate so far, Laplace-smoothed (0.5 before anything was validated)."""
        return (self.passed + 1) / (self.candidates + 2)

    def label_yield(self, label: str) -> float:
        """Samples that pass with `label` per candidate aimed at it (written labels may differ from targets),
        shrunk toward the overall rate while few candidates were aimed at it."""
        return (self.passed_label[label] + PRIOR * self.rate) / (self.targeted[label] + PRIOR)

    def table(self) -> dict[str, Any]:
        """Acceptance per template and per attribute value, for the manifest."""
        def row(p: int, n: int) -> dict[str, Any]:
            return {"candidates": n, "passed": p, "rate": round(p / n, 4) if n else None}
        return {"by_template": {t: row(*c) for t, c in sorted(self.templates.items())},
                "by_attribute": {a: {v: row(*c) for v, c in sorted(vs.items())} for a, vs in sorted(self.attributes.items())}}


def next_round(tally: Tally, quotas: dict[str, int], delivered: Counter, *, budget: int, first: int, seed: int,
               round_: int, per_prompt: int) -> tuple[int, dict[int, str], dict[str, int]]:
    """(size, target label per prompt offset, prompts per label) of the next round.

    Each label short of its quota gets ceil(missing / its yield) candidates; the round is at most `budget`
    (the candidates left) and, after the first (`first`: N), at most twice the candidates so far, so one
    unlucky round cannot spend the whole budget on a rate measured from a handful of samples.
    """
    missing = {label: q - delivered.get(label, 0) for label, q in quotas.items() if q - delivered.get(label, 0) > 0}
    if not missing or budget <= 0:
        return 0, {}, {}
    if tally.candidates == 0:
        wanted = dict(missing)
        cap = first
    else:
        wanted = {label: math.ceil(m / max(tally.label_yield(label), 1e-3)) for label, m in missing.items()}
        cap = max(first, 2 * tally.candidates)
    cap = max(1, min(cap, budget) // per_prompt)  # in prompts
    prompts = {label: math.ceil(n / per_prompt) for label, n in wanted.items()}
    if len(prompts) > cap:  # fewer prompts left than short labels: one each for the labels missing most
        ranked = sorted(prompts, key=lambda label: (-missing[label], list(quotas).index(label)))
        prompts = dict.fromkeys(ranked[:cap], 1)
    if sum(prompts.values()) > cap:  # scale down, largest remainders first, every short label keeping one
        total = sum(prompts.values())
        exact = {label: n * cap / total for label, n in prompts.items()}
        scaled = {label: max(1, math.floor(x)) for label, x in exact.items()}
        for label in sorted(exact, key=lambda k: exact[k] - math.floor(exact[k]), reverse=True):
            if sum(scaled.values()) >= cap:
                break
            scaled[label] += 1
        while sum(scaled.values()) > cap and any(v > 1 for v in scaled.values()):
            biggest = max(scaled, key=lambda k: scaled[k])
            scaled[biggest] -= 1
        prompts = scaled
    order = [label for label in quotas if label in prompts for _ in range(prompts[label])]
    random.Random(f"{seed}:round-labels:{round_}").shuffle(order)
    return len(order) * per_prompt, dict(enumerate(order)), prompts


def acceptance_weights(tally: Tally, base: dict[str, Any] | None = None, source: str = "") -> dict[str, Any] | None:
    """Sampling weights (the shape `PlanConfig.weights` takes, as `--weights-from` gives) from the run's own
    acceptance per template and attribute value, added to the review counts in `base` where given."""
    if tally.candidates == 0:
        return base

    def counts(entry: dict[str, Any] | None) -> tuple[int, int]:
        return (int(entry.get("accepted", 0)), int(entry.get("decided", 0))) if entry else (0, 0)

    def smoothed(p: int, n: int, extra: dict[str, Any] | None) -> dict[str, Any]:
        a, d = counts(extra)
        return {"accepted": p + a, "decided": n + d, "weight": round((p + a + ALPHA) / (n + d + ALPHA + BETA), 6)}

    base = base or {}
    templates = {t: smoothed(p, n, base.get("templates", {}).get(t)) for t, (p, n) in tally.templates.items()}
    attributes = {a: {v: smoothed(p, n, base.get("attributes", {}).get(a, {}).get(v)) for v, (p, n) in vs.items()}
                  for a, vs in tally.attributes.items()}
    for t, entry in base.get("templates", {}).items():  # reviewed settings this run has not drawn yet
        templates.setdefault(t, smoothed(0, 0, entry))
    for a, vs in base.get("attributes", {}).items():
        for v, entry in vs.items():
            attributes.setdefault(a, {}).setdefault(v, smoothed(0, 0, entry))
    return {"source": source or "acceptance in this run", "prior": {"alpha": ALPHA, "beta": BETA},
            "prior_mean": round(ALPHA / (ALPHA + BETA), 6), "decided_items": tally.candidates,
            "templates": dict(sorted(templates.items())),
            "attributes": {a: dict(sorted(vs.items())) for a, vs in sorted(attributes.items())}}
