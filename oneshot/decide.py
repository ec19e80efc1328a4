"""How much to trust retrieval and how much the model, chosen on held-out training rows.

    weight, info = choose_intent_weight(knn_probs, model_logprobs, labels)
    probs = mix(knn_probs, model_logprobs, weight)                     # weight 0: retrieval only
    strategy, info = choose_reply_strategy(nearest_cos, generated_cos)  # "nearest" or "generate"

The evidence is cross-fitted: every training row is scored by an adapter that never trained on it
and by retrieval that cannot see it. The model must earn its share by getting more rows right; on a
tie the smaller model weight wins, and any model weight must win by a margin of rows, because
retrieval is the backbone that holds on any domain and one row in 30 is noise.
"""

from __future__ import annotations

import math

import numpy as np

INTENT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def mix(knn_probs: np.ndarray, model_logprobs: np.ndarray | None, weight: float) -> np.ndarray:
    """(1 - weight) · retrieval probabilities + weight · model probabilities."""
    if model_logprobs is None or weight == 0:
        return knn_probs
    return (1 - weight) * knn_probs + weight * np.exp(model_logprobs)


def margin_rows(n: int) -> int:
    """Rows the model must win by before it gets any weight: one row in 30 is noise, not evidence."""
    return max(2, math.ceil(0.05 * n))


def choose_intent_weight(knn_probs: np.ndarray, model_logprobs: np.ndarray, labels: np.ndarray
                         ) -> tuple[float, dict]:
    """The model weight with the most held-out rows right (ties: the smaller weight).

    Any weight above 0 must get at least `margin_rows` more rows right than retrieval alone.
    """
    table = {}
    for weight in INTENT_WEIGHTS:
        probs = mix(knn_probs, model_logprobs, weight)
        table[weight] = int((probs.argmax(axis=1) == labels).sum())
    n = len(labels)
    best = max(INTENT_WEIGHTS, key=lambda w: (table[w], -w))
    if table[best] < table[0.0] + margin_rows(n):
        best = 0.0
    return best, {"model_weight": best, "rows": n, "margin_rows": margin_rows(n),
                  "accuracy_by_model_weight": {str(w): round(c / max(n, 1), 4) for w, c in table.items()}}


def choose_reply_strategy(nearest_cosine: np.ndarray, generated_cosine: np.ndarray | None) -> tuple[str, dict]:
    """'generate' only when its replies are closer to the ideal replies on average than the nearest reply."""
    info: dict = {"nearest_reply_cosine": round(float(nearest_cosine.mean()), 4) if len(nearest_cosine) else None}
    if generated_cosine is None or not len(generated_cosine):
        return "nearest", {**info, "strategy": "nearest", "reason": "no held-out generations"}
    info["generated_reply_cosine"] = round(float(generated_cosine.mean()), 4)
    strategy = "generate" if generated_cosine.mean() > nearest_cosine.mean() else "nearest"
    return strategy, {**info, "strategy": strategy}
