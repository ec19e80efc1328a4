"""What review teaches generation: sampling weights from how often reviewers accepted each setting.

    weights = sampling_weights(store, task="fin_sentiment", source="runs/fin/review.db")
    # {"source": ..., "prior": {"alpha": 1.0, "beta": 1.0}, "decided_items": 40,
    #  "templates": {"fewshot": {"accepted": 17, "decided": 20, "weight": 0.818}, ...},
    #  "attributes": {"sector": {"banking": {"accepted": 3, "decided": 5, "weight": 0.571}, ...}, ...}}

weight = (accepted + alpha) / (decided + alpha + beta) over resolved items; `generate.py --weights-from
review.db` draws with these weights. Design: docs/review.md#design-review_appweightspy
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy.engine import make_url

from review_app.store import ReviewStore

ACCEPTED = ("approved", "edited")
RESOLVED = (*ACCEPTED, "rejected")


def _smoothed(accepted: int, decided: int, alpha: float, beta: float) -> dict[str, Any]:
    return {"accepted": accepted, "decided": decided,
            "weight": round((accepted + alpha) / (decided + alpha + beta), 6)}


def sampling_weights(store: ReviewStore, *, task: str, source: str = "", alpha: float = 1.0,
                     beta: float = 1.0) -> dict[str, Any]:
    """Acceptance per generation template and per attribute value of `task`'s resolved items."""
    if alpha <= 0 or beta <= 0:
        raise ValueError("the Beta prior's alpha and beta must be positive")
    templates: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    attributes: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    decided = 0
    for status in RESOLVED:
        for item in store.list_items(status=status):
            if item.record.task != task:
                continue
            decided += 1
            ok = int(status in ACCEPTED)
            prov = item.record.provenance
            if prov.get("template_id"):
                counts = templates[str(prov["template_id"])]
                counts[0], counts[1] = counts[0] + ok, counts[1] + 1
            attrs = prov.get("attributes")
            for name, value in (attrs.items() if isinstance(attrs, dict) else ()):
                counts = attributes[str(name)][str(value)]
                counts[0], counts[1] = counts[0] + ok, counts[1] + 1
    return {
        "source": source, "task": task, "prior": {"alpha": alpha, "beta": beta},
        "prior_mean": round(alpha / (alpha + beta), 6), "decided_items": decided,
        "templates": {t: _smoothed(a, n, alpha, beta) for t, (a, n) in sorted(templates.items())},
        "attributes": {name: {v: _smoothed(a, n, alpha, beta) for v, (a, n) in sorted(values.items())}
                       for name, values in sorted(attributes.items())},
    }


def weights_from(db: str, *, task: str) -> dict[str, Any]:
    """`sampling_weights` of an existing review database (a path or a SQLAlchemy URL)."""
    store = ReviewStore(db, create=False)
    try:
        # A URL is recorded without its password (the weights end up in a run's manifest).
        source = make_url(str(db)).render_as_string(hide_password=True) if "://" in str(db) else str(db)
        return json.loads(json.dumps(sampling_weights(store, task=task, source=source)))
    finally:
        store.close()
