"""The solved training tickets put in a prompt: a ticket's k most similar rows of a pool, never its own group.

    neighbours = Neighbours(view, k=4)
    prompts_of = neighbours.of_rows(fit_rows, pool=fit_rows)          # training prompts: no row sees its group
    picked = neighbours.among(view.embed(tickets), train_rows)         # val tickets: any training row

Most similar last, nearest the question (docs/oneshot.md#design-oneshotpromptspy).
"""

from __future__ import annotations

import numpy as np

from oneshot.contract import TrainRow
from oneshot.knn import RetrievalView


class Neighbours:
    """The k most similar training rows of a ticket, among a pool, most similar last."""

    def __init__(self, retrieval: RetrievalView, k: int):
        self.view, self.k = retrieval, k
        self.position = {r.id: i for i, r in enumerate(retrieval.rows)}

    def among(self, queries: np.ndarray, pool: list[TrainRow], exclude_groups: list[str | None] | None = None
              ) -> list[list[TrainRow]]:
        """Per query, its k nearest rows of `pool`; `exclude_groups[q]`: a group query q must not see."""
        if self.k <= 0 or not pool:
            return [[] for _ in range(len(queries))]
        index = np.array([self.position[r.id] for r in pool])
        sims = queries @ self.view.tickets[index].T
        pool_groups = np.array([r.group for r in pool], dtype=object)
        for q, excluded in enumerate(exclude_groups or []):
            if excluded is not None:
                sims[q, pool_groups == excluded] = -np.inf  # the row and its paraphrases: one group
        order = np.argsort(-sims, axis=1, kind="stable")
        picked = []
        for q in range(len(queries)):
            best = [pool[j] for j in order[q] if np.isfinite(sims[q, j])][: self.k]
            picked.append(best[::-1])
        return picked

    def of_rows(self, rows: list[TrainRow], pool: list[TrainRow]) -> dict[str, list[TrainRow]]:
        """Each row's neighbours among `pool`, never a row of its own group (the prompts of training)."""
        queries = self.view.tickets[[self.position[r.id] for r in rows]]
        return dict(zip([r.id for r in rows], self.among(queries, pool, [r.group for r in rows]), strict=True))
