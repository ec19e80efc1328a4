"""MinHash dedup of 100,000 short records: batched signatures (ours) vs one `MinHash.update` per shingle.

Both paths start from the same shingles and must end with identical near-duplicate clusters.
Ours: `signatures` (each distinct shingle hashed once, permutations applied per batch in numpy)
then `band_clusters` (datasketch's band layout, buckets by `np.unique`). Naive: one
`MinHash.update` per shingle, then a datasketch `MinHashLSH` insert and query per record. Rows:
signatures/s (the hashing stage alone), end-to-end dedup records/s, and bytes per indexed record
(signature + in-memory datasketch LSH, measured with tracemalloc on 10,000 records).
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np

from bench import BenchRow, ratio
from validators.minhash import LshIndex, Shingler, band_clusters, clusters, naive_signature, signatures

N = 100_000
THRESHOLD = 0.7
SEED = 0
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
    """Short synthetic news lines; about one in ten is a near copy (one word changed) of an earlier one."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for i in range(n):
        if i > 10 and rng.random() < 0.1:
            words = texts[int(rng.integers(0, i))].split()
            words[int(rng.integers(0, len(words)))] = str(rng.choice(_WORDS))
            texts.append(" ".join(words))
            continue
        extra = " ".join(rng.choice(_WORDS, size=int(rng.integers(3, 9))))
        texts.append(f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} of "
                     f"{rng.integers(1, 999)}.{rng.integers(0, 9)} million {rng.choice(_TAILS)}, {extra}")
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

    start = time.perf_counter()
    naive = np.array([naive_signature(s) for s in sets])
    naive_sig_s = time.perf_counter() - start
    start = time.perf_counter()
    naive_clusters = clusters(texts, naive, THRESHOLD)
    naive_lsh_s = time.perf_counter() - start

    if not (np.array_equal(ours, naive) and ours_clusters == naive_clusters):
        raise AssertionError("batched and naive MinHash disagree")
    in_clusters = sum(len(c) for c in ours_clusters)
    ours_bytes = _index_bytes(ours[:10_000], as_objects=False)
    naive_bytes = _index_bytes(naive[:10_000], as_objects=True)
    note = f"{N} records, {len(ours_clusters)} clusters ({in_clusters} records), identical"
    return [
        BenchRow("minhash.signatures_batched_vs_update_loop", N / ours_sig_s, N / naive_sig_s,
                 ratio(N / ours_sig_s, N / naive_sig_s), 5.0, "records/s", note),
        BenchRow("minhash.dedup_end_to_end_batched_vs_update_loop", N / (ours_sig_s + lsh_s),
                 N / (naive_sig_s + naive_lsh_s), ratio(N / (ours_sig_s + lsh_s), N / (naive_sig_s + naive_lsh_s)),
                 5.0, "records/s", "shingles → signatures → LSH buckets → verified clusters"),
        BenchRow("minhash.bytes_per_indexed_record", ours_bytes, naive_bytes,
                 ratio(ours_bytes, naive_bytes, higher_is_better=False), None, "bytes/record",
                 "signature + in-memory LSH (tracemalloc, 10,000 records)"),
    ]
