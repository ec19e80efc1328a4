"""Retrieval's view of a ticket: intent probabilities from the most similar training tickets.

    view = RetrievalView.build(train_rows, intents, encoder=BUNDLED)
    probs = view.intent_probs(view.embed(tickets), settings)         # (tickets, intents)
    loo = view.leave_one_out(settings)                               # each real row scored without its group
    fit = view.subset([0, 2, 5])                                     # the same embeddings, fewer rows (folds)

A ticket's score for an intent starts from its cosine similarity to that intent's closest training
ticket (1-nearest-neighbour); the optional terms and the temperature: docs/oneshot.md#design-oneshotknnpy
Hiding a row hides its group (the row and its paraphrases: `oneshot.groups`); evidence is real rows only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from itertools import product

import numpy as np

from backends.embeddings import BUNDLED, embed
from oneshot.contract import TrainRow
from oneshot.groups import group_codes, same_group


@dataclass(frozen=True)
class KnnSettings:
    """Weights of the terms added to the nearest-ticket similarity (all 0: plain 1-NN)."""

    mean_weight: float = 0.0
    name_weight: float = 0.0
    reply_weight: float = 0.0
    temperature: float = 0.05

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


ONE_NN = KnnSettings()


def intent_words(name: str) -> str:
    """An intent name as words: 'billing.refund_request' / 'RefundRequest' / 'REFUND-REQUEST' → 'refund request'."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(re.split(r"[\W_]+", spaced)).strip().lower() or name


@dataclass
class RetrievalView:
    rows: list[TrainRow]
    intents: list[str]
    tickets: np.ndarray  # unit embeddings of the training tickets
    replies: np.ndarray  # unit embeddings of the training replies
    names: np.ndarray  # unit embeddings of the intent names as words
    members: np.ndarray  # (intents, rows) 1 where the row carries the intent
    encoder: str = BUNDLED
    groups: np.ndarray = field(default=None)  # type: ignore[assignment]  # group code per row (from the ids)

    def __post_init__(self) -> None:
        if self.groups is None:
            self.groups = group_codes(self.rows)

    @classmethod
    def build(cls, rows: list[TrainRow], intents: list[str], encoder: str = BUNDLED) -> RetrievalView:
        vectors = embed([r.ticket for r in rows] + [r.reply for r in rows] + [intent_words(i) for i in intents],
                        encoder)
        n = len(rows)
        members = np.array([[r.intent == intent for r in rows] for intent in intents], dtype=np.float32)
        return cls(rows, intents, vectors[:n], vectors[n : 2 * n], vectors[2 * n :], members, encoder)

    def embed(self, texts: list[str]) -> np.ndarray:
        return embed(texts, self.encoder)

    def subset(self, indices: list[int] | np.ndarray) -> RetrievalView:
        """The view of some of the rows (a cross-fit's fit fold), reusing their embeddings."""
        idx = np.asarray(indices, dtype=np.int64)
        return RetrievalView([self.rows[i] for i in idx], self.intents, self.tickets[idx], self.replies[idx],
                             self.names, self.members[:, idx], self.encoder, self.groups[idx])

    def evidence(self) -> np.ndarray:
        """Indices of the real rows: paraphrases are neighbours, never evidence (they are not val-like)."""
        return np.array([i for i, r in enumerate(self.rows) if not r.is_paraphrase], dtype=np.int64)

    def _hidden(self, n_queries: int, exclude: np.ndarray | None) -> np.ndarray:
        """(queries, rows) True where query q must not see row j: every row of `exclude[q]`'s group."""
        if exclude is None:
            return np.zeros((n_queries, len(self.rows)), dtype=bool)
        exclude = np.asarray(exclude)
        query_groups = np.where(exclude >= 0, self.groups[np.maximum(exclude, 0)], -1)
        return same_group(self.groups, query_groups)

    def similarities(self, queries: np.ndarray) -> np.ndarray:
        return queries @ self.tickets.T

    def intent_scores(self, queries: np.ndarray, settings: KnnSettings, *, exclude: np.ndarray | None = None
                      ) -> np.ndarray:
        """(queries, intents) scores; `exclude[q]` = index of a training row whose whole group query q must
        not see (-1: none)."""
        ticket_sims = queries @ self.tickets.T
        reply_sims = queries @ self.replies.T
        visible = ~self._hidden(len(queries), exclude)
        # (queries, intents, rows) masks of the training rows each intent may use for each query.
        mask = visible[:, None, :] & (self.members[None, :, :] > 0)
        has_rows = mask.any(axis=2)
        nearest = np.where(mask, ticket_sims[:, None, :], -np.inf).max(axis=2)
        scores = np.where(has_rows, nearest, -1.0)  # an intent with no visible row: least similar possible
        if settings.mean_weight:
            counts = np.maximum(mask.sum(axis=2), 1)
            mean = np.where(mask, ticket_sims[:, None, :], 0.0).sum(axis=2) / counts
            scores = scores + settings.mean_weight * np.where(has_rows, mean, -1.0)
        if settings.reply_weight:
            best_reply = np.where(mask, reply_sims[:, None, :], -np.inf).max(axis=2)
            scores = scores + settings.reply_weight * np.where(has_rows, best_reply, -1.0)
        if settings.name_weight:
            scores = scores + settings.name_weight * (queries @ self.names.T)
        return scores

    def intent_probs(self, queries: np.ndarray, settings: KnnSettings, *, exclude: np.ndarray | None = None
                     ) -> np.ndarray:
        return softmax(self.intent_scores(queries, settings, exclude=exclude) / settings.temperature)

    def leave_one_out(self, settings: KnnSettings) -> np.ndarray:
        """Each real row's intent probabilities with its group hidden (rows of `evidence()`, in order)."""
        rows = self.evidence()
        return self.intent_probs(self.tickets[rows], settings, exclude=rows)

    def labels(self) -> np.ndarray:
        """The intent index of every row."""
        return np.array([self.intents.index(r.intent) for r in self.rows])

    def nearest_reply(self, queries: np.ndarray, intent_ids: np.ndarray, *, exclude: np.ndarray | None = None
                      ) -> list[int]:
        """Per query, the training row of the given intent whose ticket is most similar (-1: none left).

        Falls back to the most similar row of any intent when the intent has no visible row.
        """
        sims = np.where(self._hidden(len(queries), exclude), -np.inf, self.similarities(queries))
        chosen = []
        for q, intent in enumerate(intent_ids):
            in_intent = np.where(self.members[intent] > 0, sims[q], -np.inf)
            pick = int(np.argmax(in_intent)) if np.isfinite(in_intent.max()) else int(np.argmax(sims[q]))
            chosen.append(pick if np.isfinite(sims[q, pick]) else -1)
        return chosen


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


GRID_MEAN = (0.0, 0.5)
GRID_NAME = (0.0, 0.25, 0.5)
GRID_REPLY = (0.0, 0.25, 0.5)
GRID_TEMPERATURE = (0.02, 0.05, 0.1, 0.2)


def choose_settings(view: RetrievalView, *, margin_rows: int = 1) -> tuple[KnnSettings, dict]:
    """The retrieval settings with the best leave-one-out accuracy on the real training rows.

    Plain 1-NN is the default; another setting replaces it only when it gets at least `margin_rows`
    more training rows right (a one-row difference out of 30 is noise), then the temperature is
    chosen by leave-one-out log-loss. Deterministic: the grid is walked in a fixed order.
    """
    labels = view.labels()[view.evidence()]
    n = len(labels)
    if n < 3 or len(view.intents) < 2:
        return ONE_NN, {"chosen": ONE_NN.as_dict(), "reason": "too few rows or intents to choose", "rows": n}

    def correct(settings: KnnSettings) -> int:
        return int((view.leave_one_out(settings).argmax(axis=1) == labels).sum())

    baseline = correct(ONE_NN)
    best, best_correct = ONE_NN, baseline
    for mean_w, name_w, reply_w in product(GRID_MEAN, GRID_NAME, GRID_REPLY):
        candidate = KnnSettings(mean_w, name_w, reply_w)
        hits = correct(candidate)
        if hits > best_correct and hits >= baseline + margin_rows:
            best, best_correct = candidate, hits
    losses = {t: log_loss(view.leave_one_out(KnnSettings(best.mean_weight, best.name_weight, best.reply_weight, t)),
                          labels) for t in GRID_TEMPERATURE}
    temperature = min(GRID_TEMPERATURE, key=lambda t: (losses[t], t))
    chosen = KnnSettings(best.mean_weight, best.name_weight, best.reply_weight, temperature)
    return chosen, {
        "chosen": chosen.as_dict(), "rows": n,
        "loo_accuracy": round(best_correct / n, 4), "loo_accuracy_1nn": round(baseline / n, 4),
        "loo_log_loss": round(losses[temperature], 4),
    }
