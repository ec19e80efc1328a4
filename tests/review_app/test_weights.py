"""What review teaches generation: acceptance per template and attribute value, smoothed, drives sampling."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from core.tasks import load_task
from generator.prompts import PlanConfig, Planner
from generator.seeds import load_seeds
from review_app.store import ReviewStore
from review_app.weights import sampling_weights, weights_from
from tests.cli_helpers import PY, REPO, child_env
from tests.review_app.conftest import make_records


@pytest.fixture
def reviewed_db(tmp_path):
    """12 items: reviewers keep every 'direct' sample and reject every 'fewshot' one but one; one pending."""
    db = tmp_path / "review.db"
    store = ReviewStore(db)
    store.enqueue(make_records(12))
    items = store.list_items()
    for n, item in enumerate(items[:-1]):
        direct = item.record.provenance["template_id"] == "direct"
        if direct and n % 4 == 0:
            store.decide(item.id, "ana", "edit", text=f"Edited {n}", reason="wording")
        elif direct or n == 1:
            store.decide(item.id, "ana", "approve")
        else:
            store.decide(item.id, "ana", "reject", reason="unnatural")
    store.close()
    return db


def test_acceptance_is_smoothed_per_template_and_attribute_value(reviewed_db):
    w = weights_from(str(reviewed_db), task="fin_sentiment")
    assert w["source"] == str(reviewed_db) and w["decided_items"] == 11  # the pending item is left out
    # direct: items 0,2,4,6,8,10 all kept -> (6+1)/(6+2); fewshot: 1,3,5,7,9 (11 pending), only 1 kept -> 2/7
    assert w["templates"]["direct"] == {"accepted": 6, "decided": 6, "weight": 0.875}
    assert w["templates"]["fewshot"] == {"accepted": 1, "decided": 5, "weight": round(2 / 7, 6)}
    # the conftest records put 'banking' on odd items (fewshot) and 'shipping and logistics' on even ones
    assert w["attributes"]["sector"]["banking"]["weight"] == round(2 / 7, 6)
    assert w["attributes"]["sector"]["shipping and logistics"]["weight"] == 0.875
    assert w["prior"] == {"alpha": 1.0, "beta": 1.0} and w["prior_mean"] == 0.5
    store = ReviewStore(reviewed_db)
    stronger = sampling_weights(store, task="fin_sentiment", alpha=10, beta=10)
    assert 0.5 < stronger["templates"]["direct"]["weight"] < 0.875  # a stronger prior pulls toward 0.5
    assert sampling_weights(store, task="support_intent")["decided_items"] == 0


def test_planner_draws_in_proportion_to_the_weights(seeds_file):
    task = load_task("fin_sentiment")
    seeds = load_seeds(seeds_file, task, "en")
    weights = {"prior_mean": 0.5, "templates": {"direct": {"weight": 0.9}, "fewshot": {"weight": 0.05},
                                                 "persona": {"weight": 0.05}},
               "attributes": {"sector": {"banking": {"weight": 50.0}}}}
    uniform = Planner(task, "en", seeds, PlanConfig(seed=3))
    weighted = Planner(task, "en", seeds, PlanConfig(seed=3, weights=weights))
    n = 300
    plain = Counter(uniform.plan(i).template_id for i in range(n))
    shifted = Counter(weighted.plan(i).template_id for i in range(n))
    assert plain["direct"] < 0.45 * n < 0.8 * n < shifted["direct"]
    sectors = Counter(weighted.plan(i).attributes["sector"] for i in range(n))
    assert sectors["banking"] > 0.5 * n and len(sectors) > 3  # unreviewed values keep the prior mean
    assert [weighted.plan(i).template_id for i in range(20)] == \
        [Planner(task, "en", seeds, PlanConfig(seed=3, weights=weights)).plan(i).template_id for i in range(20)]


def test_generate_records_the_weights_it_used_in_its_manifest(reviewed_db, seeds_file, tmp_path):
    out = tmp_path / "run"
    res = subprocess.run(
        [PY, "generate.py", "--task", "fin_sentiment", "--lang", "en", "--n", "2", "--model", "tiny",
         "--seeds", str(seeds_file), "--out", str(out), "--no-validate", "--quiet", "--batch-size", "2",
         "--max-new-tokens", "48", "--weights-from", str(reviewed_db)],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"sampling weights from {reviewed_db}: 11 reviewed items" in res.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    used = manifest["config"]["plan.weights"]
    assert used == weights_from(str(reviewed_db), task="fin_sentiment")
    assert used["source"] == str(reviewed_db) and used["templates"]["direct"]["weight"] == 0.875
