"""The time plan's parts, in process: bounded cross-fit answers, prediction reserves, model failures.

The whole run at 10x the rows, inside its budget with a slowed stand-in model, is in tests/test_run.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from oneshot import adapter
from oneshot.contract import ValRow, read_train
from oneshot.crossfit import PROBE, Evidence, _generate_in_time, _score_in_time
from oneshot.knn import ONE_NN, RetrievalView
from oneshot.neighbours import Neighbours
from oneshot.pipeline import Options, Prediction
from oneshot.prompts import ticket_messages
from oneshot.timeplan import Clock, Rates

REPO = Path(__file__).resolve().parents[2]
NORTHSTAR = REPO / "data" / "samples" / "northstar"


@pytest.fixture(scope="module")
def rows():
    return read_train(NORTHSTAR / "train.jsonl")


def test_a_fold_out_of_time_answers_one_batch_of_its_sample(rows):
    """Past the fold's deadline the held rows get one small batch of scores (some evidence) and no replies."""
    intents = list(dict.fromkeys(r.intent for r in rows))
    prompts = [ticket_messages(r.ticket, [], intents) for r in rows] * 2  # 60 held rows
    backend = adapter.load_backend("tiny", None)
    order = list(range(len(prompts)))[::-1]
    evidence = Evidence()
    past = time.monotonic() - 1
    scored = _score_in_time(backend, prompts, intents, order, past, evidence)
    intents_of = [r.intent for r in rows] * 2
    assert _generate_in_time(backend, prompts, intents_of, order[:40], past, "tiny", 0, evidence) == {}
    assert sorted(scored) == sorted(order[:PROBE]) and len(evidence.score_s) == 1
    # With time, every row of the sample is answered.
    later = time.monotonic() + 3600
    assert len(_score_in_time(backend, prompts[:20], intents, list(range(20)), later, evidence)) == 20
    assert len(_generate_in_time(backend, prompts[:20], intents_of[:20], list(range(20)), later, "tiny", 0,
                                 evidence)) == 20


def test_the_reserve_covers_only_what_the_decision_uses():
    rates = Rates.prior("tiny")
    retrieval_only = rates.prediction_s(500, score=False, generate=False)
    scores = rates.prediction_s(500, score=True, generate=False)
    both = rates.prediction_s(500, score=True, generate=True)
    assert retrieval_only < scores < both
    measured = rates.measured_as(load_s=1.0, score_s=0.01, generate_s=None)
    assert measured.measured and measured.generate_s == rates.generate_s and measured.score_s == 0.01


def test_the_slowed_stand_in_is_expected_to_be_slower(monkeypatch):
    base = Rates.prior("tiny")
    monkeypatch.setenv("SEEDLOOP_TINY_SLOWDOWN", "10")
    slowed = Rates.prior("tiny")
    assert slowed.generate_s == pytest.approx(10 * base.generate_s)
    from backends.models import load_model

    model, _ = load_model("tiny", device="cpu")
    assert len(model._forward_hooks) == 1 and len(model._forward_pre_hooks) == 1


def test_a_model_that_cannot_load_leaves_retrieval_to_predict(rows, tmp_path):
    """An exception in the model's prediction costs the model's part only: every row still gets an answer."""
    intents = list(dict.fromkeys(r.intent for r in rows))
    view = RetrievalView.build(rows, intents)
    opts = Options(train=NORTHSTAR / "train.jsonl", val=NORTHSTAR / "val.jsonl", weights=tmp_path / "no-adapter",
                   output=tmp_path / "r.json", base_model="tiny")
    plan = Prediction(opts, intents, view, ONE_NN, Neighbours(view, 1), 1.0, "generate", Rates.prior("tiny"),
                      Clock(time.monotonic(), 600))
    val = [ValRow("a", rows[0].ticket), ValRow("b", ""), ValRow("c", rows[5].ticket)]
    predictions = plan.predict(val, rows, use_model=True)
    assert "not a PEFT adapter folder" in plan.error and plan.info["model_loaded"] is False
    assert [p["id"] for p in predictions] == ["a", "b", "c"]
    assert (predictions[0]["predicted_intent"], predictions[2]["predicted_intent"]) == (rows[0].intent, rows[5].intent)
    assert all(p["prediction"] and p["tokens_used"] == 0 for p in predictions)
