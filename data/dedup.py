"""Exact duplicates, conflicting labels and MinHash near duplicates among real records.

Near duplicates use the one near-duplicate module (`validators.minhash`) with the data stage's
settings: character 5-gram shingles of `normalise_text` (word shingles are too coarse for one-line
headlines: changing two words of fifteen already halves a word-trigram Jaccard), MinHash with LSH for
candidates, then the exact Jaccard of the shingle sets to confirm each pair, so the reported pairs
have no MinHash false positives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from core.records import Record, normalise_text
from validators.minhash import CHAR_5GRAMS, Shingler
from validators.minhash import NearDuplicateIndex as _Index

NUM_PERM = 128
DEFAULT_THRESHOLD = 0.6


class NearDuplicateIndex(_Index):
    """The near-duplicate index with the data stage's settings; `query` / `pairs` give confirmed matches."""

    def __init__(self, texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD, seed: int = 1):
        super().__init__(texts, threshold=threshold, shingler=Shingler(CHAR_5GRAMS), num_perm=NUM_PERM, seed=seed,
                         verify="exact")


def exact_groups(records: Sequence[Record]) -> list[list[int]]:
    """Indices of records sharing one normalised text, for every text seen more than once."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[normalise_text(rec.text)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def conflicting_groups(records: Sequence[Record], label_name: str) -> list[list[int]]:
    """Exact-duplicate groups whose members carry different labels."""
    return [g for g in exact_groups(records) if len({records[i].labels[label_name] for i in g}) > 1]


def cross_pairs(a: Sequence[str], b: Sequence[str], threshold: float = DEFAULT_THRESHOLD
                ) -> list[tuple[int, int, float]]:
    """(i in a, j in b, Jaccard) for every exact or near-duplicate pair across two collections."""
    if not a or not b:
        return []
    index = NearDuplicateIndex(b, threshold)
    exact = {normalise_text(t): j for j, t in enumerate(b)}
    found = []
    for i, text in enumerate(a):
        hits = dict(index.query(text))
        if normalise_text(text) in exact:
            hits[exact[normalise_text(text)]] = 1.0
        found += [(i, j, s) for j, s in sorted(hits.items())]
    return found
