"""Paraphrase augmentation against tests/fakes/paraphrase_server.py, a FAKE OpenAI-compatible server on
loopback that answers each ticket with two of its words swapped (a near-copy) and bills at the price
table's rate for gpt-4o-mini."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oneshot.augment import augment
from oneshot.contract import read_train
from oneshot.crossfit import fold_retrieval
from oneshot.groups import group_folds
from oneshot.knn import RetrievalView, choose_settings
from tests.fakes.paraphrase_server import ParaphraseServer

REPO = Path(__file__).resolve().parents[2]
NORTHSTAR = REPO / "data" / "samples" / "northstar" / "train.jsonl"


@pytest.fixture(scope="module")
def rows():
    return read_train(NORTHSTAR)


@pytest.fixture
def server(monkeypatch):
    with ParaphraseServer() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "fake")
        monkeypatch.delenv("OPENAI_MODEL", raising=False)
        yield fake


def test_paraphrases_join_their_sources_group_with_its_intent_and_reply(rows, server):
    out, info = augment(rows, seed=0, max_cost_usd=3.0)
    extra = out[len(rows):]
    assert out[: len(rows)] == rows and info["used"] and info["accepted"] == len(extra) > len(rows) // 2
    by_id = {r.id: r for r in rows}
    for row in extra:
        source = by_id[row.group]
        assert row.id == f"{source.id}~p" and row.is_paraphrase
        assert (row.intent, row.reply) == (source.intent, source.reply) and row.ticket != source.ticket
        assert sorted(row.ticket.split()) == sorted(source.ticket.split()), "two words swapped, nothing else"
    assert server.answered == len(rows) and info["cost_usd"] == pytest.approx(server.billed_usd)


def test_spend_stays_under_the_cap_by_the_price_table(rows, server):
    cap = 0.0008  # about 18 requests' worth at gpt-4o-mini prices, reserved at their most before sending
    out, info = augment(rows, seed=0, max_cost_usd=cap)
    assert info["stopped"] == "spend cap" and 0 < info["accepted"] < len(rows)
    assert server.billed_usd <= cap and info["cost_usd"] <= cap
    assert len(out) == len(rows) + info["accepted"]


def test_a_402_halfway_keeps_what_was_accepted(rows, monkeypatch):
    with ParaphraseServer(pay_for=12) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "fake")
        out, info = augment(rows, seed=0, max_cost_usd=3.0)
    assert fake.answered == 12 and info["stopped"].startswith("API error 402")
    assert 0 < info["accepted"] <= 12 and len(out) == len(rows) + info["accepted"]
    assert len(fake.requests) < len(rows), "sending stopped at the first batch that met the 402"


def test_same_seed_same_paraphrases(rows, server):
    first, _ = augment(rows, seed=3, max_cost_usd=3.0)
    again, _ = augment(rows, seed=3, max_cost_usd=3.0)
    other, _ = augment(rows, seed=4, max_cost_usd=3.0)
    assert first == again
    assert [r.ticket for r in first[len(rows):]] != [r.ticket for r in other[len(rows):]]


def test_no_api_configured_means_no_augmentation(rows, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out, info = augment(rows, seed=0, max_cost_usd=3.0)
    assert out == rows and info["used"] is False


def test_the_decision_evidence_does_not_move_with_near_copies(rows, server):
    """Leave-one-out and the cross-fit's fold-fair retrieval accuracy, with and without the near-twins."""
    augmented, _ = augment(rows, seed=0, max_cost_usd=3.0)
    intents = list(dict.fromkeys(r.intent for r in rows))
    plain_view, aug_view = RetrievalView.build(rows, intents), RetrievalView.build(augmented, intents)
    _, plain = choose_settings(plain_view)
    _, aug = choose_settings(aug_view)
    assert aug["rows"] == plain["rows"] == len(rows)
    assert abs(aug["loo_accuracy_1nn"] - plain["loo_accuracy_1nn"]) <= 0.05
    assert abs(aug["loo_accuracy"] - plain["loo_accuracy"]) <= 0.1

    def fold_fair_accuracy(view: RetrievalView, train) -> float:
        position = {r.id: i for i, r in enumerate(view.rows)}
        folds = group_folds(train, 2, 0)
        hits = []
        for k, held in enumerate(folds):
            fit = [r for j, fold in enumerate(folds) if j != k for r in fold]
            held = [r for r in held if not r.is_paraphrase]
            labels = np.array([intents.index(r.intent) for r in held])
            probs, _, _, _ = fold_retrieval(view, [position[r.id] for r in fit], [position[r.id] for r in held], labels)
            hits += (probs.argmax(axis=1) == labels).tolist()
        return float(np.mean(hits))

    assert abs(fold_fair_accuracy(aug_view, augmented) - fold_fair_accuracy(plain_view, rows)) <= 0.1
