"""Paraphrase dedup as the run grows: the `paraphrase_duplicates` check of 10k and of 100k samples, per sample.

    python -m bench paraphrase      # slow (minutes): `make bench` skips it

The check is the validator's own (`ParaphraseDuplicateValidator.check`: every sample against every earlier
one and the references, exact cosine search in blocks, one verdict each), with the MiniLM embeddings
computed beforehand: embedding costs the same per text whatever the run's size (measured apart, on real
sentences, and added for the end-to-end figure), the search is what grows. The vectors are the bundled
MiniLM's embeddings of 2,000 synthetic news lines (bench_minhash's corpus) and of seeded noisy copies of them
(one in five within cosine 0.97 of its source: planted paraphrases). Baselines: the same check at 10k (the
growth row: 1.0 = linear in the run's size); embedding one sample (the search at 100k should cost no more);
the loop a user would otherwise write (each sample's vector against the earlier ones, one matrix-vector
product per sample) at 10k, with the same verdicts.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from backends.embeddings import embed
from bench import BenchRow, ratio
from bench.bench_minhash import corpus
from core.records import Record
from core.tasks import load_task
from validators.base import Context
from validators.paraphrase import ParaphraseDuplicateValidator

SLOW = True  # minutes: `make bench` skips it; `python -m bench paraphrase` (or --all) runs it
SIZES = (10_000, 100_000)
BASE_TEXTS = 2_000
COMMAND = "python -m bench paraphrase"


class PrecomputedParaphrase(ParaphraseDuplicateValidator):
    """The validator with its embeddings looked up (computed before the clock starts): a bench device."""

    vectors: ClassVar[dict[str, np.ndarray]] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def vectors(n: int, base: np.ndarray, seed: int = 0) -> np.ndarray:
    """`n` unit vectors around the real embeddings `base`: most far from each other, one in five a paraphrase."""
    rng = np.random.default_rng(seed)
    picks = base[rng.integers(0, len(base), n)]
    noise = rng.normal(size=picks.shape).astype(np.float32)
    scale = np.where(rng.random(n) < 0.2, 0.012, 0.08)[:, None]  # 0.012: cosine ~0.95 to its source
    out = picks + scale * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def check_point(n: int, base: np.ndarray) -> dict[str, Any]:
    task = load_task("fin_sentiment")
    vecs = vectors(n, base)
    records = [Record.new(task=task.name, lang="en", text=f"sample {i}", labels={"label": "neutral"})
               for i in range(n)]
    PrecomputedParaphrase.vectors = {r.text: v for r, v in zip(records, vecs, strict=True)}
    validator = PrecomputedParaphrase(task, {"threshold": 0.9}, Context())
    start = time.perf_counter()
    verdicts = validator.check(records)
    seconds = time.perf_counter() - start
    return {"n": n, "seconds": seconds, "us_per_sample": seconds / n * 1e6,
            "rejected": sum(1 for v in verdicts if not v.passed)}


def naive_point(n: int, base: np.ndarray) -> dict[str, Any]:
    """Each sample against the ones before it, one matrix-vector product each (what one writes first)."""
    vecs = vectors(n, base)
    start = time.perf_counter()
    rejected = 0
    for i in range(1, n):
        rejected += int((vecs[:i] @ vecs[i]).max() >= 0.9)
    seconds = time.perf_counter() - start
    return {"n": n, "seconds": seconds, "us_per_sample": seconds / n * 1e6, "rejected": rejected}


def run() -> list[BenchRow]:
    texts = corpus(BASE_TEXTS)
    embed(texts[:8])  # load the encoder before the clock starts
    start = time.perf_counter()
    base = embed(texts, batch_size=128)
    embed_us = (time.perf_counter() - start) / len(texts) * 1e6
    small, large = (check_point(n, base) for n in SIZES)
    naive = naive_point(SIZES[0], base)
    if naive["rejected"] != small["rejected"]:
        raise RuntimeError(f"the check and the plain loop disagree: {small['rejected']} vs {naive['rejected']} rejected")
    curve = "; ".join(f"{p['n']}: {p['seconds']:.1f} s, {p['us_per_sample']:.0f} us/sample, {p['rejected']} rejected"
                      for p in (small, large))
    note = (f"embedding {embed_us:.0f} us/text on top (MiniLM, measured on {BASE_TEXTS} lines), so end to end "
            f"{(embed_us + small['us_per_sample']) / 1e3:.1f} ms/sample at 10k and "
            f"{(embed_us + large['us_per_sample']) / 1e3:.1f} ms at 100k")
    return [
        BenchRow("paraphrase.check_us_per_sample_100k_vs_10k", large["us_per_sample"], small["us_per_sample"],
                 ratio(large["us_per_sample"], small["us_per_sample"], False), None, "us/sample",
                 f"baseline: the same check at 10k (1.0 = linear; exact search grows with the samples before "
                 f"each one); {curve}; {note}", COMMAND),
        BenchRow("paraphrase.search_100k_vs_embedding_us_per_sample", large["us_per_sample"], embed_us,
                 ratio(large["us_per_sample"], embed_us, False), 1.0, "us/sample",
                 "baseline: embedding the sample (MiniLM, the part that does not grow): at 100k the search "
                 "should still cost no more than that", COMMAND),
        BenchRow("paraphrase.check_vs_one_product_per_sample_10k", small["us_per_sample"], naive["us_per_sample"],
                 ratio(small["us_per_sample"], naive["us_per_sample"], False), 1.0, "us/sample",
                 f"baseline: one matrix-vector product per sample against the earlier ones ({naive['seconds']:.1f} s, "
                 f"{naive['rejected']} rejected; ours {small['rejected']}, verdicts included)", COMMAND),
    ]
