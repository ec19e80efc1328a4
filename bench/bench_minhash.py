"""MinHash near-duplicate removal of 50,000 short records: ours vs datasketch as its docs show.

    python -m bench minhash

Same shingles, same threshold; the signatures must be identical, and so must the clusters once
datasketch's candidates are verified. What each side runs: docs/benchmarks.md#design-benchbench_minhashpy
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np

from bench import BenchRow, ratio
from validators.minhash import LshIndex, Shingler, band_clusters, signatures

N = 50_000  # 100k took ~4 min on the shared 2-core machine; the ratio does not depend on N
THRESHOLD = 0.7
SEED = 0
MINHASH_SEED = 1  # validators.minhash's default seed
_SUBJECTS = ["Nordvik Shipping", "Baltico Foods", "Kestrel Energy", "Helmsdale Bank", "Ferrin Logistics",
             "Vinamilk", "Hòa Phát", "Orion Mining", "Tessaly Telecom", "Marlow Insurance", "Quill Retail"]
_VERBS = ["reports", "expects", "posts", "announces", "warns of", "confirms", "targets", "forecasts"]
_OBJECTS = ["net sales", "operating profit", "a dividend", "a share buyback", "layoffs", "a new contract",
            "quarterly revenue", "pre-tax profit", "a credit downgrade", "record exports", "a plant closure"]
_TAILS = ["in Asia", "for 2025", "year on year", "after strong demand", "despite weak prices", "in Europe",
          "in the third quarter", "this month", "from a year earlier", "on the HOSE exchange"]
_WORDS = ["shares", "rose", "fell", "sharply", "analysts", "said", "guidance", "margin", "investors", "bonds",
          "the", "company", "market", "growth", "costs", "orders", "outlook", "strong", "weak", "cash"]


def corpus(n: int = N, seed: int = SEED) -> list[str]:
    """Short synthetic news lines; about one in ten is a near copy (one word changed) of an earlier
    one. Drawn in bulk (1M lines take seconds)."""
    rng = np.random.default_rng(seed)
    subj, verb = rng.integers(0, len(_SUBJECTS), n), rng.integers(0, len(_VERBS), n)
    obj, tail = rng.integers(0, len(_OBJECTS), n), rng.integers(0, len(_TAILS), n)
    whole, frac = rng.integers(1, 999, n), rng.integers(0, 9, n)
    extra, width = rng.integers(0, len(_WORDS), (n, 8)), rng.integers(3, 9, n)
    texts = [f"{_SUBJECTS[subj[i]]} {_VERBS[verb[i]]} {_OBJECTS[obj[i]]} of {whole[i]}.{frac[i]} million "
             f"{_TAILS[tail[i]]}, {' '.join(_WORDS[w] for w in extra[i, : width[i]])}" for i in range(n)]
    copy = np.nonzero((rng.random(n) < 0.1) & (np.arange(n) > 10))[0]
    sources, where, words = rng.random(len(copy)), rng.random(len(copy)), rng.integers(0, len(_WORDS), len(copy))
    for i, src, at, w in zip(copy.tolist(), sources, where, words, strict=True):
        parts = texts[int(src * i)].split()
        parts[int(at * len(parts))] = _WORDS[w]
        texts[i] = " ".join(parts)
    return texts


def _index_bytes(sigs: np.ndarray, as_objects: bool) -> float:
    """Bytes per record held by the signatures plus an in-memory LSH over them."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = [s.copy() for s in sigs] if as_objects else sigs.copy()
    if as_objects:  # the naive path keeps one MinHash (its own arrays) per record
        from datasketch import MinHash

        held = [MinHash(hashvalues=s, scheme="affine32") for s in held]
    index = LshIndex(THRESHOLD)
    index.add([str(i) for i in range(len(sigs))], sigs)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del held, index
    return used / len(sigs)


def _components(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of size > 1 (each sorted), as `band_clusters` returns them."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


def datasketch_pairs(minhashes: list, threshold: float = THRESHOLD, num_perm: int = 128) -> list[tuple[int, int]]:
    """datasketch's LSH as its docs show: one `MinHashLSH.insert` and one `query` per record; the
    candidate pairs i < j."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    return [(i, j) for i, m in enumerate(minhashes) for j in lsh.query(m) if j > i]


def run() -> list[BenchRow]:
    texts = corpus()
    shingler = Shingler()
    sets = [shingler(t, "en") for t in texts]

    start = time.perf_counter()
    ours = signatures(sets)
    ours_sig_s = time.perf_counter() - start
    start = time.perf_counter()
    ours_clusters = band_clusters(ours, THRESHOLD)
    lsh_s = time.perf_counter() - start

    from datasketch import MinHash

    start = time.perf_counter()
    theirs = MinHash.bulk(sets, num_perm=128, seed=MINHASH_SEED)
    their_sig_s = time.perf_counter() - start
    start = time.perf_counter()
    pairs = datasketch_pairs(theirs)
    their_total_s = their_sig_s + time.perf_counter() - start
    their_clusters = _components(len(texts), pairs)  # clustering the pairs is not timed (ours is)

    if not np.array_equal(ours, np.array([m.hashvalues for m in theirs], dtype=ours.dtype)):
        raise AssertionError("our signatures differ from datasketch's MinHash.bulk")
    verified = _components(len(texts), [(i, j) for i, j in pairs if theirs[i].jaccard(theirs[j]) >= THRESHOLD])
    if verified != ours_clusters:
        raise AssertionError("verified datasketch clusters differ from ours")
    in_ours, in_theirs = sum(len(c) for c in ours_clusters), sum(len(c) for c in their_clusters)
    if their_clusters == ours_clusters:
        same = "identical clusters"
    else:
        same = (f"datasketch's unverified query results: {len(their_clusters)} clusters ({in_theirs} records) vs "
                f"ours {len(ours_clusters)} ({in_ours}); with its candidate pairs verified by MinHash.jaccard: "
                "identical")
    ours_bytes = _index_bytes(ours[:10_000], as_objects=False)
    naive_bytes = _index_bytes(ours[:10_000], as_objects=True)
    note = (f"baseline: datasketch per its docs (MinHash.bulk + MinHashLSH insert/query), threshold {THRESHOLD}; "
            f"{N} records; signatures identical; {same}")
    ours_total = ours_sig_s + lsh_s
    return [
        BenchRow("minhash.signatures_vs_datasketch_bulk", N / ours_sig_s, N / their_sig_s,
                 ratio(N / ours_sig_s, N / their_sig_s), 1.0, "records/s", note),
        BenchRow("minhash.dedup_end_to_end_vs_datasketch_bulk_lsh", N / ours_total, N / their_total_s,
                 ratio(N / ours_total, N / their_total_s), 1.0, "records/s",
                 "shingles -> signatures -> LSH buckets -> clusters (ours verified); " + note),
        BenchRow("minhash.bytes_per_indexed_record", ours_bytes, naive_bytes,
                 ratio(ours_bytes, naive_bytes, higher_is_better=False), None, "bytes/record",
                 "signature array + in-memory LSH vs one MinHash object per record + the same LSH "
                 "(tracemalloc, 10,000 records)"),
    ]
