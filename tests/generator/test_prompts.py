"""Prompt plans: deterministic per index, quota-balanced labels, seed-conditioned, diverse."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import UserError
from core.records import Record
from core.tasks import load_task
from generator.diversity import distinct_n
from generator.prompts import PlanConfig, Planner
from generator.seeds import load_seeds


@pytest.fixture(scope="module")
def task():
    return load_task("fin_sentiment")


def test_plans_are_a_pure_function_of_config_and_index(task, seeds_file):
    seeds = load_seeds(seeds_file, task, "en")
    a = Planner(task, "en", seeds, PlanConfig(seed=7))
    b = Planner(task, "en", list(seeds), PlanConfig(seed=7))
    for i in (0, 5, 41, 3):  # any order: no state carried between calls
        pa, pb = a.plan(i), b.plan(i)
        assert (pa.target_label, pa.template_id, pa.attributes, pa.prompt, pa.sampling) == \
               (pb.target_label, pb.template_id, pb.attributes, pb.prompt, pb.sampling)
    other = Planner(task, "en", seeds, PlanConfig(seed=8))
    assert [other.plan(i).prompt for i in range(6)] != [a.plan(i).prompt for i in range(6)]


def test_labels_are_quota_balanced_and_seeds_match_label_and_language(task, seeds_file):
    seeds = load_seeds(seeds_file, task, "en")
    planner = Planner(task, "en", seeds, PlanConfig(seed=0, k=3))
    plans = [planner.plan(i) for i in range(30)]
    assert Counter(p.target_label for p in plans) == {"positive": 10, "negative": 10, "neutral": 10}
    for plan in plans:
        assert len(plan.seeds) == 3
        assert all(s.lang == "en" and s.labels["label"] == plan.target_label for s in plan.seeds)
        assert plan.target_label in plan.prompt
        prov = planner.provenance(plan)
        assert prov["seed_ids"] == [s.id for s in plan.seeds] and prov["template_id"] in task.generation_templates
        assert set(prov["attributes"]) == set(task.attributes)
    assert len({p.template_id for p in plans}) == len(task.generation_templates)
    assert len({tuple(sorted(p.attributes.items())) for p in plans}) == 30
    # What varies between prompts: the request and the examples answered before it.
    assert distinct_n([" ".join([p.prompt, *(s.text for s in p.seeds)]) for p in plans], 2) > 0.3


def test_seeds_are_solved_example_turns_before_the_request(task, seeds_file):
    """Each seed is a user request for its label, answered with the seed as the generator's JSON; the
    request itself lists no seed (a small model copied the list's shape into its samples)."""
    import json

    seeds = load_seeds(seeds_file, task, "en")
    plan = Planner(task, "en", seeds, PlanConfig(seed=0, k=3)).plan(4)
    roles = [m["role"] for m in plan.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    answers = [json.loads(m["content"]) for m in plan.messages if m["role"] == "assistant"]
    assert answers == [{"text": s.text, "label": s.labels["label"]} for s in plan.seeds]
    assert all(f"clearly {s.labels['label']}" in m["content"]
               for s, m in zip(plan.seeds, plan.messages[1::2], strict=False))
    assert plan.messages[-1]["content"] == plan.prompt and not any(s.text in plan.prompt for s in plan.seeds)
    # The answers are what the constrained decoder writes: valid under the generation schema, compact.
    for answer in plan.messages[2:-1:2]:
        task.generation_schema().model_validate_json(answer["content"])
        assert ", " not in answer["content"].replace(answers[0]["text"], "")[:12]


def test_a_template_can_opt_out_of_example_turns(seeds_file):
    task = load_task("support_intent")
    seeds = [Record.new(task="support_intent", lang="en", text=f"My invoice {i} is wrong", source="real",
                        labels={"intent": "billing.invoice_request", "reply": "We will fix it."}) for i in range(3)]
    planner = Planner(task, "en", seeds, PlanConfig(seed=0, k=1, templates=("paraphrase",)))
    assert [m["role"] for m in planner.plan(0).messages] == ["system", "user"]
    planner = Planner(task, "en", seeds, PlanConfig(seed=0, k=1, templates=("new_ticket",)))
    turns = planner.plan(0).messages
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user"]
    assert turns[2]["content"].startswith('{"ticket":"My invoice') and '"reply":"We will fix it."' in turns[2]["content"]


def test_samples_per_prompt_and_temperature_mix(task, seeds_file):
    seeds = load_seeds(seeds_file, task, "vi")
    planner = Planner(task, "vi", seeds, PlanConfig(samples_per_prompt=2, temperature_mix=(0.5, 1.0)))
    p0, p1, p2 = planner.plan(0), planner.plan(1), planner.plan(2)
    assert p0.prompt == p1.prompt and p0.sampling.seed != p1.sampling.seed
    assert (p0.sampling.temperature, p2.sampling.temperature) == (0.5, 1.0)
    assert p0.sampling.strategy.startswith("mix(t=0.5")
    assert "Vietnamese" in p0.prompt


def test_bad_seed_files_are_one_line_errors(task, tmp_path, seeds_file):
    with pytest.raises(UserError, match="seed file not found"):
        load_seeds(tmp_path / "nope.jsonl", task, "en")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match="empty"):
        load_seeds(empty, task, "en")
    bad = tmp_path / "bad.jsonl"
    rec = Record.new(task="fin_sentiment", lang="en", text="Shares rose.", labels={"label": "bullishish"})
    bad.write_text(seeds_file.read_text().splitlines()[0] + "\n" + rec.model_dump_json() + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: field 'labels.label': 'bullishish' is not a label"):
        load_seeds(bad, task, "en")
    with pytest.raises(UserError, match="no language 'de'"):
        load_seeds(seeds_file, task, "de")


def test_distinct_n():
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6, abs=1e-3)
    assert distinct_n([""], 2) == 0.0
