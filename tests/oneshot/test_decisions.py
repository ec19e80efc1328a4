"""Retrieval's view, the prompts' byte format and the trust decision, without any model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oneshot.contract import TrainRow
from oneshot.decide import choose_intent_weight, choose_reply_strategy, margin_rows, mix
from oneshot.knn import ONE_NN, KnnSettings, RetrievalView, intent_words
from oneshot.prompts import (
    answer,
    intent_prefix,
    parse_reply,
    reply_prefix,
    ticket_messages,
    training_example,
)


@pytest.mark.parametrize(("name", "words"), [
    ("billing.refund_request", "billing refund request"), ("RefundRequest", "refund request"),
    ("ACCOUNT_LOCKED", "account locked"), ("Shipping - Where is my order", "shipping where is my order"),
])
def test_intent_names_become_words(name, words):
    assert intent_words(name) == words


def unit(rows: list[list[float]]) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def view() -> RetrievalView:
    rows = [TrainRow("a", "t-a", "refund", "r-a"), TrainRow("b", "t-b", "refund", "r-b"),
            TrainRow("c", "t-c", "login", "r-c"), TrainRow("d", "t-d", "login", "r-d")]
    tickets = unit([[1, 0.1, 0], [0.9, 0.3, 0], [0.1, 1, 0], [0.2, 0.9, 0.2]])
    members = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32)
    return RetrievalView(rows, ["refund", "login"], tickets, tickets.copy(), unit([[1, 0, 0], [0, 1, 0]]), members)


def test_plain_settings_are_one_nearest_neighbour(view):
    queries = unit([[1, 0.2, 0], [0.3, 1, 0.1]])
    nearest_intent = [view.rows[i].intent for i in (queries @ view.tickets.T).argmax(axis=1)]
    predicted = [view.intents[i] for i in view.intent_probs(queries, ONE_NN).argmax(axis=1)]
    assert predicted == nearest_intent == ["refund", "login"]


def test_leave_one_out_never_sees_the_row_itself(view):
    lone = RetrievalView(view.rows[:3], view.intents, view.tickets[:3], view.replies[:3], view.names,
                         view.members[:, :3])
    # Row c is the only 'login' row: hidden, it cannot vote for itself, so retrieval must say 'refund'.
    assert lone.intent_probs(lone.tickets, ONE_NN, exclude=np.arange(3)).argmax(axis=1)[2] == 0


def test_nearest_reply_stays_inside_the_decided_intent(view):
    query = unit([[0.15, 1, 0]])
    assert view.nearest_reply(query, np.array([0])) == [1]  # most similar refund row, not the login rows
    assert view.nearest_reply(query, np.array([1])) == [2]


def test_prompt_pieces_are_the_trained_bytes():
    full = answer("billing.refund", 'Sure "now"\nthanks')
    assert full == json.dumps({"intent": "billing.refund", "reply": 'Sure "now"\nthanks'})
    assert full.startswith(intent_prefix("billing.refund")) and full.startswith(reply_prefix("billing.refund"))
    assert parse_reply(full[len(reply_prefix("billing.refund")):]) == 'Sure "now"\nthanks'
    assert parse_reply("cut off mid rep") == "cut off mid rep"
    row = TrainRow("x", "my ticket", "billing.refund", "the reply")
    example = training_example(row, [TrainRow("y", "other", "login", "hello")], ["billing.refund", "login"])
    assert [m["role"] for m in example["prompt"]] == ["system", "user", "assistant", "user"]
    assert example["completion"][0]["content"] == answer("billing.refund", "the reply")
    assert "billing.refund, login" in ticket_messages("t", [], ["billing.refund", "login"])[0]["content"]


def test_the_model_must_win_by_a_margin():
    labels = np.array([0, 1, 0, 1] * 5)
    knn = np.where(np.arange(2) == labels[:, None], 0.8, 0.2)
    knn[:3] = knn[:3, ::-1]  # retrieval gets 3 rows wrong
    one_better = np.log(np.where(np.arange(2) == labels[:, None], 0.99, 0.01))
    one_better[:2] = one_better[:2, ::-1]  # the model alone gets 2 wrong: one row better than retrieval
    weight, info = choose_intent_weight(knn, one_better, labels)
    assert margin_rows(20) == 2 and weight == 0.0 and info["accuracy_by_model_weight"]["1.0"] == 0.9
    clearly_better = np.log(np.where(np.arange(2) == labels[:, None], 0.99, 0.01))
    weight, _ = choose_intent_weight(knn, clearly_better, labels)
    assert weight > 0
    assert np.allclose(mix(knn, clearly_better, 0.0), knn)


def test_reply_strategy_follows_the_held_out_similarity():
    assert choose_reply_strategy(np.array([0.6, 0.5]), np.array([0.1, 0.2]))[0] == "nearest"
    assert choose_reply_strategy(np.array([0.3, 0.4]), np.array([0.7, 0.6]))[0] == "generate"
    assert choose_reply_strategy(np.array([0.3]), None)[0] == "nearest"


def test_settings_round_trip():
    assert KnnSettings(0.5, 0.25, 0.0, 0.1).as_dict() == {"mean_weight": 0.5, "name_weight": 0.25,
                                                            "reply_weight": 0.0, "temperature": 0.1}
