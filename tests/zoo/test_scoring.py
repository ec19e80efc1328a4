"""Choice scoring scores exactly the trained tokens, on every family: the token ids the scorer reads for
each choice are the ids of the same answer inside the rendered training example, at the same position,
and the score is the model's log-probability of those very tokens there."""

from __future__ import annotations

import json

import pytest

from backends import chat
from backends.transformers_backend import TransformersBackend
from core.task_spec import Task
from evaluator.prompts import score_choices
from oneshot.contract import TrainRow
from oneshot.prompts import intent_choices, ticket_messages, training_example
from tests.conftest import SAMPLES
from tests.zoo.conftest import loaded
from trainer.formatting import loss_tokens

pytestmark = pytest.mark.zoo

ROWS = [TrainRow(r["id"], r["ticket"], r["intent"], r["ideal_reply"])
        for r in map(json.loads, (SAMPLES / "northstar" / "train.jsonl").read_text().splitlines())]
INTENTS = sorted({r.intent for r in ROWS})


def _trained(tok, example: dict, choice_start: str, choice: str) -> tuple[list[int], list[int], int, int]:
    """(training ids, loss mask, [first, last) of the tokens overlapping `choice` in the answer, which
    starts with `choice_start`)."""
    ids, mask = loss_tokens(tok, example)
    span = chat.answer_span(tok, example["prompt"], example["completion"][0]["content"])
    assert span.text[span.start:].startswith(choice_start + choice)
    start = span.start + len(choice_start)
    first, last = chat.covering(chat.encode(tok, span.text)[1], start, start + len(choice))
    return ids, mask, first, last


def _assert_scored_tokens_are_trained(tok, prompt, answers: list[str], before: str, choices: list[str],
                                      after: str) -> list[tuple[list[int], int]]:
    rows = chat.choice_tokens(tok, chat.answer_prefix(tok, prompt), choices, before=before, after=after)
    for (ids, n), choice, answer in zip(rows, choices, answers, strict=True):
        example = {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}
        train_ids, mask, first, last = _trained(tok, example, before, choice)
        assert ids == train_ids[: len(ids)], f"{choice!r}: the scored context is the training text's"
        assert (len(ids) - n, len(ids)) == (first, last), f"{choice!r}: the scored tokens sit where training has them"
        assert all(mask[first:last]), f"{choice!r}: every scored token is one the loss was on"
    return rows


def _logprob_at(model, ids: list[int], n: int) -> float:
    """log P of the last `n` of `ids`, each given everything before it (one plain forward pass)."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids[:-1]]), logits_to_keep=n).logits[0].float()
    return float(torch.log_softmax(logits, -1)[torch.arange(n), torch.tensor(ids[-n:])].sum())


def test_run_py_intents_score_the_trained_tokens(family):
    model, tok = loaded(family)
    row, neighbour = ROWS[0], ROWS[1]
    prompt = ticket_messages(row.ticket, [neighbour], INTENTS)
    before, choices, after = intent_choices(INTENTS)
    answers = [training_example(TrainRow(row.id, row.ticket, i, row.reply), [neighbour], INTENTS)["completion"][0]
               ["content"] for i in INTENTS]
    rows = _assert_scored_tokens_are_trained(tok, prompt, answers, before, choices, after)
    # The scorer (KV cache, shared prefix, batched choices) reads exactly those tokens.
    got = TransformersBackend(family, loaded=(model, tok)).score([prompt], choices, before=before, after=after)[0]
    assert got == pytest.approx([_logprob_at(model, ids, n) for ids, n in rows], abs=2e-4)


@pytest.mark.parametrize("task_name", ["support_intent", "fin_sentiment"])
def test_evaluator_labels_score_the_trained_tokens(family, task_name, support_task, fin_task):
    """JSON answers (the label is followed by more text) and bare labels (followed by end of turn)."""
    task: Task = support_task if task_name == "support_intent" else fin_task
    _, tok = loaded(family)
    text, lang = ("My invoice shows the wrong VAT number.", "en") if task.outputs else ("Lợi nhuận tăng.", "vi")
    prompt = task.classify_messages(text, lang, variant=0)  # the tuned model's prompt (evaluator.tuned_prompts)
    scoring = score_choices(task)
    answers = [task.answer({task.label_name: label, "reply": "Thanks, fixed."}) for label in task.label_names]
    _assert_scored_tokens_are_trained(tok, prompt, answers, scoring.before, scoring.choices, scoring.after)
