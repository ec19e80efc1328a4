"""Prompts: the tuned model's training format, the base model's same instruction with optional
k-shot examples drawn (seeded) from train and never from eval, and the scored choice strings."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.tasks import load_task
from evaluator.prompts import base_prompts, pick_shots, score_choices, tuned_prompts


def test_tuned_prompt_is_the_training_format_without_the_answer(fin_task, split):
    _, held = split
    record = held[0]
    prompt = tuned_prompts(fin_task, [record])[0]
    trained = fin_task.training_messages(record.text, record.lang, record.labels, variant=0)
    assert prompt == trained[:-1]


def test_zero_shot_base_prompt_is_the_same_instruction(fin_task, split):
    _, held = split
    assert base_prompts(fin_task, held) == tuned_prompts(fin_task, held)


def test_k_shot_examples_are_turns_from_train_of_the_same_language(fin_task, split):
    train, held = split
    prompts = base_prompts(fin_task, held, shots=3, pool=train, seed=7)
    by_text = {r.text: r for r in train}
    for record, prompt in zip(held, prompts, strict=True):
        roles = [m["role"] for m in prompt]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
        assert prompt[-1] == fin_task.classify_messages(record.text, record.lang)[1]
        shown = [m["content"].split("Text: ", 1)[1] for m in prompt[1:-1:2]]
        assert all(by_text[t].lang == record.lang for t in shown)
        answers = [m["content"] for m in prompt[2::2]]
        assert answers == [by_text[t].labels["label"] for t in shown]
    assert prompts == base_prompts(fin_task, held, shots=3, pool=train, seed=7)  # seeded
    assert prompts != base_prompts(fin_task, held, shots=3, pool=train, seed=8)


def test_shots_never_come_from_eval_items(fin_task, split):
    train, held = split
    # A pool that (wrongly) also holds the eval items: they must be skipped, never shown.
    eval_texts = {r.text for r in held}
    for seed in range(5):
        for prompt in base_prompts(fin_task, held, shots=6, pool=train + held, seed=seed):
            shown = {m["content"].split("Text: ", 1)[1] for m in prompt[1:-1:2]}
            assert len(shown) == 6
            assert not shown & eval_texts


def test_shots_are_balanced_over_labels(fin_task, split):
    chosen = pick_shots(fin_task, split[0], 6, "en", seed=0)
    labels = sorted(r.labels["label"] for r in chosen)
    assert labels == ["negative", "negative", "neutral", "neutral", "positive", "positive"]


def test_shots_need_a_pool(fin_task, split):
    with pytest.raises(UserError, match="--shots-from"):
        base_prompts(fin_task, split[1], shots=2, pool=None)


def test_score_choices():
    fin = score_choices(load_task("fin_sentiment"))
    assert (fin.choices, fin.before, fin.after, fin.frame()) == (["positive", "negative", "neutral"], "", "", {})
    support = load_task("support_intent")
    scoring = score_choices(support)
    assert (scoring.before, scoring.choices[0], scoring.after) == ('{"intent": "', 'billing.seat_question"',
                                                                 ', "reply": ""}')
    # before + choice is a prefix of the answer the tuned model was trained to write, and after follows it.
    answer = support.answer({"intent": "billing.seat_question", "reply": ""})
    assert answer == scoring.before + scoring.choices[0] + scoring.after
