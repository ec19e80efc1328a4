"""A paraphrase is one group with its source: never its neighbour, never across a fold, never evidence.

Planted paraphrases differ from their source by one word (the near-twins an API returns); the real
MiniLM encoder embeds the Northstar samples, as in run.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oneshot.contract import TrainRow, paraphrase_id, read_train
from oneshot.crossfit import fold_prompts, fold_retrieval
from oneshot.groups import group_folds
from oneshot.knn import ONE_NN, RetrievalView, choose_settings
from oneshot.neighbours import Neighbours

REPO = Path(__file__).resolve().parents[2]
NORTHSTAR = REPO / "data" / "samples" / "northstar" / "train.jsonl"


def one_word_changed(ticket: str) -> str:
    words = ticket.split()
    words[len(words) // 2] = "really" if words[len(words) // 2] != "really" else "truly"
    return " ".join(words)


@pytest.fixture(scope="module")
def rows() -> list[TrainRow]:
    return read_train(NORTHSTAR)


@pytest.fixture(scope="module")
def planted(rows) -> list[TrainRow]:
    """Every training row plus its paraphrase `<id>~p`, one word different, same intent and reply."""
    return rows + [TrainRow(f"{r.id}~p", one_word_changed(r.ticket), r.intent, r.reply) for r in rows]


@pytest.fixture(scope="module")
def views(rows, planted) -> tuple[RetrievalView, RetrievalView]:
    intents = list(dict.fromkeys(r.intent for r in rows))
    return RetrievalView.build(rows, intents), RetrievalView.build(planted, intents)


def test_a_paraphrase_is_never_its_sources_neighbour(planted, views):
    _, view = views
    prompts = Neighbours(view, k=4).of_rows(planted, planted)
    twins = [r for r in planted if r.is_paraphrase]
    assert len(twins) == 30 and all(t.group == t.id[:-2] for t in twins)
    for row in planted:
        assert all(n.group != row.group for n in prompts[row.id]), row.id
    # ... although it is by far the most similar ticket: the one-word twin is what a leak would pick.
    sims = view.tickets @ view.tickets.T
    np.fill_diagonal(sims, -1)
    assert all(view.rows[int(j)].group == view.rows[i].group for i, j in enumerate(sims[:30].argmax(axis=1)))


def test_a_paraphrase_stays_on_its_sources_side_of_every_fold(rows, planted):
    for seed in range(3):
        folds = group_folds(planted, 2, seed)
        side = {r.id: k for k, fold in enumerate(folds) for r in fold}
        assert sorted(side) == sorted(r.id for r in planted)
        assert all(side[r.id] == side[r.group] for r in planted)
        # Stratified: each intent of the 15 (two rows each) has one source row on each side.
        for fold in folds:
            assert sorted(r.intent for r in fold if not r.is_paraphrase) == sorted({r.intent for r in rows})
        # The real rows fall the same way with or without augmentation.
        assert [[r.id for r in f] for f in group_folds(rows, 2, seed)] == \
            [[r.id for r in f if not r.is_paraphrase] for f in folds]


def test_leave_one_out_with_near_twins_stays_near_the_plain_one(views):
    plain, augmented = views
    _, plain_info = choose_settings(plain)
    _, aug_info = choose_settings(augmented)
    assert aug_info["rows"] == plain_info["rows"] == 30, "paraphrases are never evidence"
    assert abs(aug_info["loo_accuracy_1nn"] - plain_info["loo_accuracy_1nn"]) <= 0.05
    assert abs(aug_info["loo_accuracy"] - plain_info["loo_accuracy"]) <= 0.1
    # Hiding a row hides its twin: no leave-one-out answer comes from the row's own group.
    hits = augmented.leave_one_out(ONE_NN).argmax(axis=1) == augmented.labels()[augmented.evidence()]
    assert hits.mean() < 0.9, "a leak would make leave-one-out (near) perfect"


def test_nearest_reply_never_comes_from_the_rows_own_group(views):
    _, view = views
    real = view.evidence()
    picks = view.nearest_reply(view.tickets[real], view.labels()[real], exclude=real)
    assert all(p < 0 or view.rows[p].group != view.rows[i].group for i, p in zip(real, picks, strict=True))


def test_the_cross_fit_shows_retrieval_only_the_fit_fold(planted, views):
    """Fold-fair: a held row's retrieval answer and its prompt's neighbours come from the fit fold alone."""
    _, view = views
    fit, held = group_folds(planted, 2, 0)
    held_real = [r for r in held if not r.is_paraphrase]
    position = {r.id: i for i, r in enumerate(view.rows)}
    labels = np.array([view.intents.index(r.intent) for r in held_real])
    held_idx = [position[r.id] for r in held_real]
    probs, replies, similarity, info = fold_retrieval(view, [position[r.id] for r in fit], held_idx, labels)
    assert info["rows"] == sum(not r.is_paraphrase for r in fit)
    fit_replies = {r.reply for r in fit}
    assert all(reply in fit_replies for reply in replies)
    # Each intent has one real row per side, so a held row's same-intent rows are all on the fit side:
    # the fit fold's nearest row of its intent, never its own (identical) reply.
    assert all(reply != row.reply for reply, row in zip(replies, held_real, strict=True))
    assert probs.shape == (len(held_real), len(view.intents))
    expected = (view.embed(replies) * view.replies[held_idx]).sum(axis=1)
    assert np.allclose(similarity, expected, atol=1e-4), "the stored reply embeddings are the embeddings"
    prompts = fold_prompts(Neighbours(view, k=2), fit, held_real)
    fit_ids = {r.id for r in fit}
    assert all(n.id in fit_ids for r in held_real for n in prompts[r.id])
    assert all(n.group != r.group for r in fit for n in prompts[r.id])


def test_paraphrase_ids_never_clash():
    assert paraphrase_id("a", {"a"}) == "a~p"
    assert paraphrase_id("a", {"a", "a~p"}) == "a~p2"
    assert TrainRow("a~p2", "t", "i", "r").group == "a" and not TrainRow("a", "t", "i", "r").is_paraphrase
