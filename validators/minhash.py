"""Near-duplicate detection, the one module both stages use with their own settings.

    shingler = Shingler()                                   # per-language shingling, see SHINGLING
    sigs = signatures([shingler(t, lang) for t, lang in texts], num_perm=128)   # (n, 128) uint32
    index = LshIndex(threshold=0.7, num_perm=128, redis_url=None)
    index.add(["a", "b"], sigs); index.candidates(sigs[0])
    near = NearDuplicateIndex(texts, threshold=0.6, shingler=Shingler(CHAR_5GRAMS), verify="exact")
    near.pairs(); near.query("a new text")                  # verified (row, Jaccard) matches

The signatures are bit-identical to datasketch's own `MinHash.update`, so sketches from either path
share one index. Each stage's settings, and why ours is faster: docs/validation.md#design-validatorsminhashpy
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from validators.text import char_ngrams, ngrams, words

# Per-language shingling. Vietnamese: syllable bigrams with diacritics folded, so a copy typed
# without diacritics ("loi nhuan") still matches "lợi nhuận"; English and other space-separated
# languages: word bigrams. Digits are folded everywhere: a template re-filled with new figures is
# still a near-duplicate. Scripts without spaces use character n-grams.
SHINGLING: dict[str, dict[str, Any]] = {
    "vi": {"unit": "word", "n": 2, "fold": True, "digits": True},
    "zh": {"unit": "char", "n": 3},
    "ja": {"unit": "char", "n": 3},
    "th": {"unit": "char", "n": 3},
    "*": {"unit": "word", "n": 2, "fold": False, "digits": True},
}
# Character 5-grams of the normalised text (spaces kept), whatever the language: the data stage's
# shingling, where word shingles are too coarse for one-line headlines (changing two words of
# fifteen already halves a word-trigram Jaccard).
CHAR_5GRAMS: dict[str, dict[str, Any]] = {"*": {"unit": "char", "n": 5, "spaces": True}}


@dataclass
class Shingler:
    """Turns a text into its set of shingles (as bytes) according to its language."""

    rules: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in SHINGLING.items()})

    def __call__(self, text: str, lang: str) -> list[bytes]:
        rule = self.rules.get(lang) or self.rules["*"]
        if rule.get("unit") == "char":
            grams = char_ngrams(text, int(rule.get("n", 3)), spaces=bool(rule.get("spaces")))
        else:
            tokens = words(text, fold=bool(rule.get("fold")), digits=bool(rule.get("digits")))
            grams = ngrams(tokens, int(rule.get("n", 2)))
        return [g.encode("utf-8") for g in dict.fromkeys(grams)]  # a set, in a stable order


def _permutations(num_perm: int, seed: int) -> np.ndarray:
    # Taken from datasketch itself so our signatures equal MinHash(num_perm, seed).update(...)
    return MinHash(num_perm=num_perm, seed=seed).permutations


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: datasketch's pre-mix before the affine permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(
    shingle_sets: Sequence[Sequence[bytes]], *, num_perm: int = 128, seed: int = 1, chunk_rows: int = 16384
) -> np.ndarray:
    """MinHash signatures of many documents at once: an (n_docs, num_perm) uint32 array.

    Each distinct shingle is hashed once (SHA-1, first 4 bytes: datasketch's `sha1_hash32`), then
    the permutations are applied to chunks of shingle rows and reduced per document with
    `np.minimum.reduceat`. An empty document gets the all-max signature, like an empty MinHash.
    """
    a, b = _permutations(num_perm, seed)
    vocab: dict[bytes, int] = {}
    ids: list[int] = []
    lengths = np.zeros(len(shingle_sets), dtype=np.int64)
    for i, shingles in enumerate(shingle_sets):
        lengths[i] = len(shingles)
        for s in shingles:
            ids.append(vocab.setdefault(s, len(vocab)))
    unpack = struct.Struct("<I").unpack_from
    hashes = np.fromiter((unpack(hashlib.sha1(s).digest())[0] for s in vocab), dtype=np.uint32, count=len(vocab))
    mixed = _fmix32(hashes)
    flat = mixed[np.asarray(ids, dtype=np.int64)]
    out = np.full((len(shingle_sets), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    doc = 0
    while doc < len(shingle_sets):
        # A chunk of whole documents holding about `chunk_rows` shingles bounds the temporary matrix.
        end = int(np.searchsorted(starts, starts[doc] + chunk_rows, side="right"))
        end = max(end, doc + 1)
        nonempty = np.nonzero(lengths[doc:end])[0] + doc
        if len(nonempty):
            lo, hi = starts[doc], starts[end - 1] + lengths[end - 1]
            with np.errstate(over="ignore"):
                phv = flat[lo:hi, None] * a[None, :] + b[None, :]  # uint32 wraparound is the mod 2^32
            out[nonempty] = np.minimum.reduceat(phv, starts[nonempty] - lo, axis=0)
        doc = end
    return out


def naive_signature(shingles: Sequence[bytes], *, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """The textbook path (one `MinHash.update` per shingle); the benchmark's baseline and the tests' oracle."""
    m = MinHash(num_perm=num_perm, seed=seed)
    for s in shingles:
        m.update(s)
    return m.hashvalues


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Jaccard similarity estimated from two MinHash signatures: the share of equal positions."""
    return float(np.mean(sig_a == sig_b))


def jaccard(a: Sequence[bytes] | set[bytes], b: Sequence[bytes] | set[bytes]) -> float:
    """Exact Jaccard similarity of two shingle sets (1.0 for two empty sets)."""
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a or b else 1.0


@lru_cache(maxsize=64)
def band_layout(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for (threshold, num_perm), computed once.

    MinHashLSH.__init__ finds them by ~1,300 numerical integrations (`_optimal_param`): about 75 ms,
    which was 90% of a near_duplicates check of 16 records (bench/peers_generation.py). Passing the cached
    pair as `params` builds the same index without it.
    """
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def band_ranges(threshold: float, num_perm: int) -> list[tuple[int, int]]:
    """The signature slice of every band: the same as `MinHashLSH(threshold, num_perm).hashranges`."""
    b, r = band_layout(threshold, num_perm)
    return [(i * r, (i + 1) * r) for i in range(b)]


def lean(sig: np.ndarray, seed: int = 1) -> LeanMinHash:
    """A datasketch LeanMinHash over a signature row (what the LSH index takes)."""
    return LeanMinHash(seed=seed, hashvalues=sig, scheme="affine32")


def redis_storage(url: str, basename: str | None = None) -> dict[str, Any]:
    """datasketch `storage_config` for a Redis URL like redis://host:port/db."""

    parsed = urlparse(url)
    config: dict[str, Any] = {"host": parsed.hostname or "localhost", "port": parsed.port or 6379}
    if parsed.path.strip("/").isdigit():
        config["db"] = int(parsed.path.strip("/"))
    if parsed.password:
        config["password"] = parsed.password
    name = basename or f"seedloop-{uuid.uuid4().hex[:12]}"
    return {"type": "redis", "basename": name.encode(), "redis": config}


class LshIndex:
    """A MinHash LSH index over signature rows, in memory or in Redis (datasketch's storage)."""

    def __init__(self, threshold: float, num_perm: int = 128, *, seed: int = 1, redis_url: str | None = None,
                 basename: str | None = None):
        self.seed = seed
        storage = redis_storage(redis_url, basename) if redis_url else None
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, storage_config=storage,
                              params=band_layout(threshold, num_perm))

    def add(self, keys: Sequence[str], sigs: np.ndarray) -> None:
        with self.lsh.insertion_session(buffer_size=50_000) as session:
            for key, sig in zip(keys, sigs, strict=True):
                session.insert(key, lean(sig, self.seed), check_duplication=False)

    def candidates(self, sig: np.ndarray) -> list[str]:
        return list(self.lsh.query(lean(sig, self.seed)))


def clusters(keys: Sequence[str], sigs: np.ndarray, threshold: float, num_perm: int = 128) -> list[list[int]]:
    """Near-duplicate clusters (index lists, each sorted, of size > 1) by LSH + verified Jaccard."""
    index = LshIndex(threshold, num_perm)
    index.add([str(i) for i in range(len(keys))], sigs)
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(keys)):
        for cand in index.candidates(sigs[i]):
            j = int(cand)
            if j != i and estimated_jaccard(sigs[i], sigs[j]) >= threshold:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(root(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


def band_clusters(sigs: np.ndarray, threshold: float, num_perm: int = 128) -> list[list[int]]:
    """The same clusters as `clusters`, computed for a whole in-memory batch with numpy.

    Uses the band layout datasketch's MinHashLSH picks for (threshold, num_perm), so the candidate
    pairs are exactly the ones its index would return; bucket keys come from `np.unique` over each
    band's bytes instead of one dict lookup per record and band. Candidates are verified by
    estimated Jaccard, and clusters are the connected components of the verified pairs.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sigs)
    firsts, seconds = [], []
    for start, end in band_ranges(threshold, num_perm):
        band = np.ascontiguousarray(sigs[:, start:end]).view(np.dtype((np.void, 4 * (end - start)))).ravel()
        _, inverse, counts = np.unique(band, return_inverse=True, return_counts=True)
        shared = np.nonzero(counts[inverse] > 1)[0]
        order = shared[np.argsort(inverse[shared], kind="stable")]
        bucket = inverse[order]
        bounds = np.flatnonzero(np.diff(bucket)) + 1
        for group in np.split(order, bounds):
            i, j = np.triu_indices(len(group), k=1)
            firsts.append(group[i])
            seconds.append(group[j])
    if not firsts:
        return []
    pairs = np.unique(np.stack([np.concatenate(firsts), np.concatenate(seconds)], axis=1), axis=0)
    sims = np.concatenate([np.mean(sigs[p[:, 0]] == sigs[p[:, 1]], axis=1) for p in np.array_split(pairs, max(1, len(pairs) // 50_000))])
    edges = pairs[sims >= threshold]
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        groups.setdefault(lab, []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


class NearDuplicateIndex:
    """Texts in a MinHash LSH index (memory or Redis), with every candidate verified.

    Args:
        texts: the indexed texts; `langs` (one per text, default "*") pick the shingling rule.
        threshold: the Jaccard at and above which two texts are near duplicates.
        shingler: the shingling (`Shingler(SHINGLING)`: word bigrams per language; `Shingler(CHAR_5GRAMS)`).
        verify: "exact" (Jaccard of the shingle sets) or "estimate" (of the signatures) for candidates.
        redis_url: keep the LSH index in Redis (datasketch's storage) instead of memory.

    A text without shingles (empty) is not indexed: it matches nothing here (exact copies are the
    caller's to find by normalised text).
    """

    def __init__(self, texts: Sequence[str], *, threshold: float, shingler: Shingler | None = None,
                 langs: Sequence[str] | None = None, num_perm: int = 128, seed: int = 1,
                 verify: Literal["exact", "estimate"] = "exact", redis_url: str | None = None):
        if verify not in ("exact", "estimate"):
            raise ValueError(f"verify must be 'exact' or 'estimate', got {verify!r}")
        self.threshold, self.num_perm, self.seed, self.verify = threshold, num_perm, seed, verify
        self.shingler = shingler or Shingler()
        langs = langs if langs is not None else ["*"] * len(texts)
        self.sets = [self.shingler(t, lang) for t, lang in zip(texts, langs, strict=True)]
        self.sigs = signatures(self.sets, num_perm=num_perm, seed=seed)
        self.lsh = LshIndex(threshold, num_perm, seed=seed, redis_url=redis_url)
        rows = [i for i, s in enumerate(self.sets) if s]
        self.lsh.add([str(i) for i in rows], self.sigs[rows])

    def _similarity(self, shingles: Sequence[bytes], sig: np.ndarray, row: int) -> float:
        if self.verify == "exact":
            return jaccard(shingles, self.sets[row])
        return estimated_jaccard(sig, self.sigs[row])

    def _matches(self, shingles: Sequence[bytes], sig: np.ndarray, skip: int = -1) -> dict[int, float]:
        if not shingles:
            return {}
        rows = sorted(int(c) for c in self.lsh.candidates(sig) if int(c) != skip)
        return {j: self._similarity(shingles, sig, j) for j in rows}

    def similarities(self, row: int) -> dict[int, float]:
        """Every LSH candidate of indexed text `row` (itself excluded) with its similarity, unthresholded."""
        return self._matches(self.sets[row], self.sigs[row], skip=row)

    def query(self, text: str, lang: str = "*") -> list[tuple[int, float]]:
        """(row, similarity) of the indexed texts near `text`, at or above the threshold, by row."""
        shingles = self.shingler(text, lang)
        sig = signatures([shingles], num_perm=self.num_perm, seed=self.seed)[0]
        return [(j, s) for j, s in self._matches(shingles, sig).items() if s >= self.threshold]

    def pairs(self) -> list[tuple[int, int, float]]:
        """Every verified pair (i < j, similarity) within the indexed texts."""
        return [(i, j, s) for i in range(len(self.sets)) for j, s in self.similarities(i).items()
                if j > i and s >= self.threshold]
