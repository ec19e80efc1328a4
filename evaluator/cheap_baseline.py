"""The strong cheap baseline: ten lines of scikit-learn per language, beside every LLM evaluation.

    preds, info = baseline_predictions(task, train_records, eval_records, seed=0)   # a label per eval item
    clf = fit_classifier("en", texts, labels, seed=0); clf.predict(["Shares fell 4%"])
    vectors = embed_cached(texts)       # the bundled MiniLM, each text embedded once per process

English (and any language named in `ENCODER_LANGS`): the bundled sentence encoder
(all-MiniLM-L6-v2, offline) + `LogisticRegression`. Every other language: character n-gram TF-IDF +
`LogisticRegression`, because the bundled encoder is English-only (on Vietnamese its embeddings are
near noise). Hyperparameters are fixed (scikit-learn's C = 1; char_wb 2-5-grams, sublinear tf), never
tuned on an eval split. The evaluator (`evaluator.run`) and the data-value report
(`evaluator.data_value`) use the same classifier, so their numbers agree.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backends.embeddings import BUNDLED, embed
from core.records import Record, normalise_text
from core.task_spec import Task
from evaluator.parser import INVALID

ENCODER_LANGS = frozenset({"en"})  # languages the bundled MiniLM encoder was trained on
MINILM, TFIDF = "minilm", "tfidf"
DESCRIPTIONS = {
    MINILM: "bundled all-MiniLM-L6-v2 sentence embeddings + scikit-learn LogisticRegression (C=1)",
    TFIDF: "character 2-5-gram TF-IDF (char_wb, sublinear tf, min_df 2) + scikit-learn LogisticRegression (C=1)",
}
_EMBEDDINGS: dict[tuple[str, str], np.ndarray] = {}  # (encoder, text) -> unit vector, for this process


def one_blas_thread() -> Any:
    """A context in which NumPy / SciPy BLAS use one thread.

    Measured on the shared 2-core machine under load: a logistic regression on 3,000 x 384 embeddings
    took 5.7 s with OpenBLAS's 2 threads and 0.2 s with one (the threads spin against other processes).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def feature_kind(lang: str) -> str:
    """`minilm` where the bundled encoder knows the language, else `tfidf`."""
    return MINILM if lang in ENCODER_LANGS else TFIDF


def embed_cached(texts: Sequence[str], model: str = BUNDLED) -> np.ndarray:
    """`backends.embeddings.embed`, but each distinct text is embedded once per process.

    The demo embeds the same 3,000 training texts for the generation report, the evaluator's
    baseline and the data-value stage; on two CPU cores that is a minute each time.
    """
    missing = list(dict.fromkeys(t for t in texts if (model, t) not in _EMBEDDINGS))
    if missing:
        for text, vector in zip(missing, embed(missing, model), strict=True):
            _EMBEDDINGS[(model, text)] = vector
    if not texts:
        return embed([], model)
    return np.stack([_EMBEDDINGS[(model, t)] for t in texts])


def tfidf_vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    # min_df=2 drops n-grams seen once; a tiny training set (< 2 texts) keeps them all.
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, dtype=np.float32)


class CheapClassifier:
    """Features for one language + a logistic regression; a single training label is a constant answer."""

    def __init__(self, lang: str, seed: int = 0):
        self.lang, self.kind, self.seed = lang, feature_kind(lang), seed
        self.vectorizer: Any = None
        self.model: Any = None
        self.constant: str | None = None

    def _features(self, texts: Sequence[str], fit: bool = False) -> Any:
        if self.kind == MINILM:
            return embed_cached(list(texts))
        if fit:
            self.vectorizer = tfidf_vectorizer()
            if len(texts) < 2:
                self.vectorizer.set_params(min_df=1)
            return self.vectorizer.fit_transform(texts)
        return self.vectorizer.transform(texts)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> CheapClassifier:
        from sklearn.linear_model import LogisticRegression

        if not texts:
            raise ValueError("no training texts")
        if len(set(labels)) < 2:  # logistic regression needs two classes; one label is all it can say
            self.constant = labels[0]
            return self
        x = self._features(texts, fit=True)
        # tol 1e-6 (scikit-learn's default is 1e-4): embeddings computed in other batches differ by ~1e-7, and
        # at the default tolerance that moved an eval item across the boundary; here the optimum is reached.
        with one_blas_thread():
            self.model = LogisticRegression(C=1.0, tol=1e-6, max_iter=5000, random_state=self.seed).fit(
                x, list(labels))
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        if self.constant is not None:
            return [self.constant] * len(texts)
        if not texts:
            return []
        x = self._features(texts)
        with one_blas_thread():
            return [str(y) for y in self.model.predict(x)]


def fit_classifier(lang: str, texts: Sequence[str], labels: Sequence[str], seed: int = 0) -> CheapClassifier:
    return CheapClassifier(lang, seed).fit(texts, labels)


def baseline_predictions(
    task: Task, train: Sequence[Record], items: Sequence[Record], *, seed: int = 0,
) -> tuple[list[str], dict[str, Any]]:
    """One cheap classifier per language of `items`, trained on that language's `train` records.

    A training text equal (normalised) to an eval text is left out, so a training file that contains
    eval items cannot inflate the baseline. An item whose language has no training record is answered
    `invalid` (a miss), and `info["missing_langs"]` names the language.

    Returns:
        (a label per item, in order; info: per language the classifier, training count, dropped overlap).
    """
    held = {normalise_text(r.text) for r in items}
    preds = [INVALID] * len(items)
    info: dict[str, Any] = {"classifiers": {}, "missing_langs": []}
    for lang in sorted({r.lang for r in items}):
        rows = [r for r in train if r.lang == lang and task.normalise_label(r.labels.get(task.label_name, ""))]
        kept = [r for r in rows if normalise_text(r.text) not in held]
        where = [i for i, r in enumerate(items) if r.lang == lang]
        if not kept:
            info["missing_langs"].append(lang)
            continue
        labels = [task.normalise_label(r.labels[task.label_name]) for r in kept]
        clf = fit_classifier(lang, [r.text for r in kept], labels, seed=seed)
        for i, label in zip(where, clf.predict([items[i].text for i in where]), strict=True):
            preds[i] = label
        info["classifiers"][lang] = {"classifier": DESCRIPTIONS[clf.kind], "features": clf.kind, "train": len(kept),
                                 "train_labels": dict(sorted(Counter(labels).items())),
                                 "dropped_eval_overlap": len(rows) - len(kept)}
    return preds, info


def training_files(adapter: str | Path | None) -> list[Path]:
    """The training files an adapter was trained on, from its `training_summary.json` (those that exist).

    `python -m trainer --train A B` records them; a run that passed records directly (the demo) has none.
    """
    if adapter is None:
        return []
    summary = Path(adapter) / "training_summary.json"
    if not summary.is_file():
        return []
    try:
        paths = json.loads(summary.read_text(encoding="utf-8")).get("config", {}).get("train") or []
    except (OSError, json.JSONDecodeError):
        return []
    return [Path(p) for p in paths if Path(p).is_file()]
