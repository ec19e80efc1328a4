"""Exact duplicates, conflicting labels and MinHash near duplicates among real records.

Near duplicates: character 5-gram shingles of `normalise_text` (word shingles are too coarse for
one-line headlines: changing two words of fifteen already halves a word-trigram Jaccard), MinHash
with LSH for candidates, then the exact Jaccard of the shingle sets to confirm each pair, so the
reported pairs have no MinHash false positives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from datasketch import MinHash, MinHashLSH

from core.records import Record, normalise_text

SHINGLE = 5
NUM_PERM = 128
DEFAULT_THRESHOLD = 0.6


def shingles(text: str, k: int = SHINGLE) -> set[bytes]:
    norm = normalise_text(text)
    if len(norm) <= k:
        return {norm.encode("utf-8")}
    return {norm[i:i + k].encode("utf-8") for i in range(len(norm) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class NearDuplicateIndex:
    """A MinHash LSH index over texts; `query` returns confirmed matches with their Jaccard."""

    def __init__(self, texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD, seed: int = 1):
        self.threshold = threshold
        self.seed = seed
        self.sets = [shingles(t) for t in texts]
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        hashes = MinHash.bulk([sorted(s) for s in self.sets], num_perm=NUM_PERM, seed=seed)
        with self.lsh.insertion_session() as session:
            for i, mh in enumerate(hashes):
                session.insert(i, mh)
        self._hashes = hashes

    def query(self, text: str) -> list[tuple[int, float]]:
        sh = shingles(text)
        mh = MinHash.bulk([sorted(sh)], num_perm=NUM_PERM, seed=self.seed)[0]
        return self._confirm(sh, self.lsh.query(mh))

    def _confirm(self, sh: set, candidates: list[int]) -> list[tuple[int, float]]:
        out = [(j, jaccard(sh, self.sets[j])) for j in candidates]
        return sorted((j, s) for j, s in out if s >= self.threshold)

    def pairs(self) -> list[tuple[int, int, float]]:
        """Every confirmed pair (i < j) within the indexed texts."""
        found = []
        for i, mh in enumerate(self._hashes):
            for j, sim in self._confirm(self.sets[i], self.lsh.query(mh)):
                if j > i:
                    found.append((i, j, sim))
        return found


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
