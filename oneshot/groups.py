"""Groups of training rows: a row and its paraphrases (`<id>~p`) are one group, kept together everywhere.

    folds = group_folds(rows, n_folds=2, seed=0)     # intent-stratified, a group never split across folds
    hidden = same_group(view_groups, query_groups)    # (queries, rows) True where a row is the query's own group

A paraphrase carries its source's intent and reply, so it is a near-copy that never exists at
prediction time: as a neighbour of its source it teaches the adapter to copy, and as retrieval
evidence it makes leave-one-out look perfect. Every place that hides a row hides its whole group.
"""

from __future__ import annotations

import warnings

import numpy as np

from oneshot.contract import TrainRow


def group_codes(rows: list[TrainRow]) -> np.ndarray:
    """An integer per row, equal for rows of one group (first-seen order)."""
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(r.group, len(codes)) for r in rows], dtype=np.int64)


def group_folds(rows: list[TrainRow], n_folds: int, seed: int) -> list[list[TrainRow]]:
    """`n_folds` intent-stratified folds (scikit-learn's StratifiedGroupKFold, seeded); groups stay whole.

    The real rows are split (stratified by intent, grouped by group) and every paraphrase follows its
    group, so the folds of the real rows are the same with or without augmentation. Rows keep their
    input order inside each fold. Fewer groups than folds: one fold per group.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    real = [r for r in rows if not r.is_paraphrase] or list(rows)
    groups = group_codes(real)
    n = min(n_folds, len(set(groups.tolist())))
    if n < 2:
        return [list(rows)]
    splitter = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "the least populated class has only 1 member": expected with 30 rows
        warnings.simplefilter("ignore", UserWarning)
        splits = [idx for _, idx in splitter.split(np.zeros(len(real)), [r.intent for r in real], groups)]
    fold_of = {real[i].group: k for k, idx in enumerate(splits) for i in idx}
    folds: list[list[TrainRow]] = [[] for _ in splits]
    for row in rows:
        folds[fold_of.get(row.group, 0)].append(row)  # a paraphrase whose source is gone: fold 0
    return folds


def same_group(row_groups: np.ndarray, query_groups: np.ndarray) -> np.ndarray:
    """(queries, rows) mask: True where row j is in query q's group (query group -1: none)."""
    return (row_groups[None, :] == query_groups[:, None]) & (query_groups[:, None] >= 0)
