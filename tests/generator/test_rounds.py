"""The arithmetic of runs to N accepted samples (generator/rounds.py): quotas, deliveries, round sizes, weights."""

from __future__ import annotations

from collections import Counter

from core.records import Record
from generator.rounds import Tally, acceptance_weights, deliver, label_quotas, next_round

LABELS = ["positive", "negative", "neutral"]


def _rec(i: int, label: str, target: str, template: str = "direct", sector: str = "banking") -> Record:
    return Record.new(task="fin_sentiment", lang="en", text=f"sample {i}", labels={"label": label},
                      provenance={"index": i, "target_label": target, "template_id": template,
                                  "attributes": {"sector": sector}})


def test_quotas_split_n_evenly_and_delivery_fills_them_in_index_order():
    assert label_quotas(10, LABELS) == {"positive": 4, "negative": 3, "neutral": 3}
    assert label_quotas(2, LABELS) == {"positive": 1, "negative": 1, "neutral": 0}
    passed = [_rec(i, label, label) for i, label in [(5, "neutral"), (0, "positive"), (3, "positive"), (9, "positive")]]
    delivered, surplus = deliver(passed, {"positive": 2, "negative": 1, "neutral": 1}, "label")
    assert [r.provenance["index"] for r in delivered] == [0, 3, 5] and [r.provenance["index"] for r in surplus] == [9]


def test_the_first_round_is_n_then_rounds_follow_each_labels_yield_within_the_budget():
    quotas = label_quotas(10, LABELS)
    size, labels, prompts = next_round(Tally(), quotas, Counter(), budget=50, first=10, seed=0, round_=1, per_prompt=1)
    assert size == 10 and prompts == quotas and Counter(labels.values()) == Counter(quotas)
    # 30 candidates, 10 aimed at each label; positive passed 4 times, negative once, neutral never.
    rows = [_rec(i, label, label) for i, label in enumerate(LABELS * 10)]
    passed = {r.id for r in rows if (r.labels["label"], r.provenance["index"] // 3) in
              {("positive", 0), ("positive", 1), ("positive", 2), ("positive", 3), ("negative", 0)}}
    tally = Tally.of(rows, passed, "label")
    assert tally.candidates == 30 and tally.passed == 5 and tally.passed_label["positive"] == 4
    delivered = Counter({"positive": 4, "negative": 1})
    size, labels, prompts = next_round(tally, quotas, delivered, budget=40, first=10, seed=0, round_=2, per_prompt=1)
    assert "positive" not in prompts and prompts["neutral"] > prompts["negative"] > 0  # the rarer, the more
    assert size == sum(prompts.values()) <= 40
    # Fewer candidates left than short labels: one each for the labels missing most, never over the budget.
    size, labels, prompts = next_round(tally, quotas, delivered, budget=1, first=10, seed=0, round_=2, per_prompt=1)
    assert size == 1 and prompts == {"neutral": 1}
    # Prompts of several samples each: the round is whole prompts.
    size, labels, _ = next_round(Tally(), quotas, Counter(), budget=50, first=10, seed=0, round_=1, per_prompt=4)
    assert size % 4 == 0 and size == 4 * len(labels)
    assert next_round(tally, quotas, Counter(quotas), budget=40, first=10, seed=0, round_=3, per_prompt=1)[0] == 0


def test_weights_lean_toward_accepted_templates_and_values_and_add_the_review_counts():
    rows = [_rec(0, "positive", "positive", "fewshot", "banking"), _rec(1, "positive", "positive", "fewshot", "energy"),
            _rec(2, "negative", "negative", "persona", "energy")]
    tally = Tally.of(rows, {rows[0].id, rows[1].id}, "label")
    weights = acceptance_weights(tally)
    assert weights["templates"]["fewshot"] == {"accepted": 2, "decided": 2, "weight": 0.75}
    assert weights["templates"]["persona"]["weight"] == 0.333333
    assert weights["attributes"]["sector"]["banking"]["weight"] > weights["attributes"]["sector"]["energy"]["weight"]
    review = {"source": "review.db", "templates": {"persona": {"accepted": 5, "decided": 5}, "direct": {"accepted": 0,
                                                                                                      "decided": 4}}}
    both = acceptance_weights(tally, review, source="acceptance in this run + review decisions in review.db")
    assert both["templates"]["persona"] == {"accepted": 5, "decided": 6, "weight": 0.75}
    assert both["templates"]["direct"]["weight"] == round(1 / 6, 6)  # reviewed only
    assert acceptance_weights(Tally(), review) is review  # nothing validated yet: the review weights as given


def test_a_labels_yield_from_a_handful_of_candidates_is_shrunk_toward_the_runs_rate():
    # smollm2-135m's round 1 of `--accepted 20` (docs/generation.md): 20 aimed 7/7/6, passed with 5/1/3.
    quotas = label_quotas(20, LABELS)
    aimed = ["positive"] * 7 + ["negative"] * 7 + ["neutral"] * 6
    passing = {0, 1, 2, 3, 4, 7, 14, 15, 16}  # 5 positive, 1 negative, 3 neutral
    rows = [_rec(i, label, label) for i, label in enumerate(aimed)]
    tally = Tally.of(rows, {r.id for r in rows if r.provenance["index"] in passing}, "label")
    assert tally.passed_label == Counter({"positive": 5, "negative": 1, "neutral": 3})
    raw = 1 / 7
    assert raw < tally.label_yield("negative") < tally.rate  # pulled up toward 10/22, not to it
    assert tally.rate < tally.label_yield("positive") < 5 / 7  # pulled down
    delivered = Counter({"positive": 5, "negative": 1, "neutral": 3})
    size, _, prompts = next_round(tally, quotas, delivered, budget=80, first=20, seed=0, round_=2, per_prompt=1)
    # Unshrunk, negative alone would want ceil(6 / (1/7)) = 42 and the round would hit its cap of 40.
    assert prompts == {"positive": 4, "negative": 22, "neutral": 7} and size == 33 < 40
