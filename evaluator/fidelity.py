"""Does a synthetic text set look like the real one? Distribution and diversity measures on features.

    space = FeatureSpace.fit("en", real_texts)               # MiniLM for English, char TF-IDF otherwise
    real, synth = space.dense(real_texts), space.dense(synth_texts)
    precision, recall = knn_precision_recall(real, synth, k=3)
    mauve_score(real, synth, seed=0)                          # MAUVE on precomputed features, seeded
    vendi(synth)                                              # effective number of distinct samples
    nearest = space.nearest_similarity(synth_texts, real_texts)   # cosine to the closest real text

Definitions (the report cites them):

- k-NN precision / recall (Kynkäänniemi et al., 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models"): each sample of a set gets a ball whose radius is the distance to its
  k-th nearest neighbour within its own set; precision is the share of synthetic samples inside the
  union of the real balls (the real manifold), recall the share of real samples inside the synthetic
  balls. Euclidean distance on unit vectors, k = 3 as in the paper.
- MAUVE (Pillutla et al., 2021; package `mauve-text`): both sets quantised by k-means on PCA-reduced
  features (the package's defaults, buckets = n / 10), then the area under the divergence frontier.
  1 = indistinguishable histograms. Its PCA and k-means take `seed`.
- Vendi score (Friedman & Dieng, 2023; package `vendi-score`): exp of the entropy of the eigenvalues of
  the cosine-similarity kernel divided by n: 1 when all samples are the same, n when all are orthogonal.

All three depend on the sample size, so callers compare equal-size sets (`data_value` subsamples the
larger one with a seeded RNG).
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluator.cheap_baseline import MINILM, embed_cached, feature_kind, tfidf_vectorizer

SVD_DIM = 128  # dense size of the TF-IDF space for MAUVE, precision/recall, Vendi and the projection
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class FeatureSpace:
    """One language's features: unit-length dense vectors, and cosine similarity between texts.

    For `tfidf` the vectorizer and its SVD are fitted on the real texts only (the reference
    distribution); similarities use the sparse TF-IDF vectors themselves, the dense SVD view serves the
    distribution measures.
    """

    lang: str
    kind: str
    vectorizer: Any = None
    svd: Any = None

    @classmethod
    def fit(cls, lang: str, real_texts: Sequence[str], seed: int = 0) -> FeatureSpace:
        space = cls(lang, feature_kind(lang))
        if space.kind != MINILM:
            from sklearn.decomposition import TruncatedSVD

            space.vectorizer = tfidf_vectorizer()
            if len(real_texts) < 2:
                space.vectorizer.set_params(min_df=1)
            sparse = space.vectorizer.fit_transform(list(real_texts))
            dim = min(SVD_DIM, sparse.shape[1] - 1, sparse.shape[0] - 1)
            if dim >= 2:
                space.svd = TruncatedSVD(n_components=dim, random_state=seed).fit(sparse)
        return space

    def _sparse(self, texts: Sequence[str]) -> Any:
        return self.vectorizer.transform(list(texts))

    def dense(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length dense features, one row per text."""
        if self.kind == MINILM:
            return embed_cached(list(texts))
        if not texts:
            return np.zeros((0, 2), dtype=np.float32)
        x = self._sparse(texts)
        x = self.svd.transform(x) if self.svd is not None else x.toarray()
        return _unit(np.asarray(x, dtype=np.float32))

    def similarity(self, queries: Sequence[str], refs: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every query to every reference text: shape (queries, refs)."""
        if self.kind == MINILM:
            return embed_cached(list(queries)) @ embed_cached(list(refs)).T
        return (self._sparse(queries) @ self._sparse(refs).T).toarray()

    def nearest_similarity(self, queries: Sequence[str], refs: Sequence[str], *,
                           exclude: Sequence[int] | None = None, chunk: int = 1024) -> np.ndarray:
        """Each query's cosine similarity to its most similar reference (chunked: bounded memory).

        `exclude[i]`: the index in `refs` that query i may not match (the query itself, when the queries
        are drawn from the references); a duplicate of it elsewhere in `refs` still counts.
        """
        if not len(queries) or not len(refs):
            return np.zeros(len(queries), dtype=np.float32)
        out = np.empty(len(queries), dtype=np.float32)
        for start in range(0, len(queries), chunk):
            sims = self.similarity(queries[start : start + chunk], refs)
            if exclude is not None:
                sims[np.arange(sims.shape[0]), np.asarray(exclude[start : start + chunk])] = -np.inf
            out[start : start + chunk] = sims.max(axis=1)
        return out


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of every row to its k-th nearest other row (the ball radius of Kynkäänniemi et al.)."""
    d = _distances(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def knn_precision_recall(real: np.ndarray, synthetic: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of `synthetic` against `real`; each set needs more than `k` rows."""
    if len(real) <= k or len(synthetic) <= k:
        raise ValueError(f"k-NN precision/recall needs more than k={k} samples per set "
                         f"(got {len(real)} real, {len(synthetic)} synthetic)")
    real, synthetic = real.astype(np.float64), synthetic.astype(np.float64)
    cross = _distances(synthetic, real)  # synthetic x real
    real_radius, synth_radius = _kth_radius(real, k), _kth_radius(synthetic, k)
    precision = float((cross <= real_radius[None, :]).any(axis=1).mean())  # inside some real ball
    back = cross.T  # real x synthetic
    recall = float((back <= synth_radius[None, :]).any(axis=1).mean())  # real inside some synthetic ball
    return precision, recall


def mauve_score(real: np.ndarray, synthetic: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """MAUVE of the two feature sets (p = real, q = synthetic), with its k-means seeded.

    faiss runs k-means on one thread here: its multi-threaded reductions may change the clustering
    from run to run, and on a thousand points one thread is fast enough.
    """
    import faiss
    import mauve

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with _quiet_stderr():  # faiss warns (from C++) whenever n < 39 points per bucket, i.e. always at n / 10
            out = mauve.compute_mauve(p_features=real.astype(np.float32), q_features=synthetic.astype(np.float32),
                                      seed=seed, verbose=False)
    finally:
        faiss.omp_set_num_threads(threads)
    return {"score": float(out.mauve), "num_buckets": int(out.num_buckets),
            "frontier_integral": float(out.frontier_integral)}


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ writes bypass `sys.stderr`); Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def vendi(x: np.ndarray) -> float:
    """Vendi score of unit feature rows (cosine kernel), via the d x d dual form (fast for n >> d)."""
    from vendi_score import vendi as vs

    return float(vs.score_dual(np.asarray(x, dtype=np.float64), normalize=True))


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams / all word n-grams (Li et al., 2016); 0.0 without any n-gram."""
    grams = [tuple(w[i : i + n]) for w in (_WORD.findall(t.casefold()) for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Words and characters per text: mean, median, 10th and 90th percentiles."""
    if not texts:
        return {}
    words = np.array([len(_WORD.findall(t)) for t in texts], dtype=float)
    chars = np.array([len(t) for t in texts], dtype=float)
    out: dict[str, float] = {}
    for name, values in (("words", words), ("chars", chars)):
        out.update({f"{name}_mean": float(values.mean()), f"{name}_median": float(np.median(values)),
                    f"{name}_p10": float(np.quantile(values, 0.1)), f"{name}_p90": float(np.quantile(values, 0.9))})
    return out


def label_balance(synthetic: Sequence[str], real: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Counts and shares per label in both sets, and their total variation distance (0 = same mix)."""
    s, r = Counter(synthetic), Counter(real)
    share = {name: {label: (c[label] / len(values) if values else 0.0) for label in labels}
             for name, c, values in (("synthetic", s, synthetic), ("real", r, real))}
    tvd = 0.5 * sum(abs(share["synthetic"][x] - share["real"][x]) for x in labels)
    return {"synthetic": {x: s[x] for x in labels}, "real": {x: r[x] for x in labels},
            "synthetic_share": share["synthetic"], "real_share": share["real"], "total_variation": float(tvd)}


def similarity_summary(values: np.ndarray, threshold: float, bins: int = 20) -> dict[str, Any]:
    """Mean / quantiles of nearest-neighbour similarities, the near-copy count at `threshold`, a histogram."""
    if not len(values):
        return {"n": 0, "near_copies": 0, "near_copy_share": 0.0, "threshold": threshold}
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=edges)
    near = int((values >= threshold).sum())
    return {"n": len(values), "mean": float(values.mean()), "median": float(np.median(values)),
            "p90": float(np.quantile(values, 0.9)), "max": float(values.max()), "threshold": threshold,
            "near_copies": near, "near_copy_share": near / len(values),
            "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}}
