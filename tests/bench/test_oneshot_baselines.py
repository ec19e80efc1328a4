"""The held-out ticket sets are well-formed, and the one-shot scorer counts what it claims to."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from bench.oneshot_baselines import evaluate, load_results, load_set, main, majority_baseline, score
from core.errors import UserError

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / "data" / "heldout"
PRODUCTS = ["parcelpost", "lumabank", "fitloop", "cloudnest"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("product", PRODUCTS)
def test_heldout_set_is_well_formed(product):
    data = load_set(HELDOUT / product)  # unique ids, val/label ids equal, every label intent in train
    assert len(data.train) == 30 and len(data.val) == 50
    counts = Counter(r["intent"] for r in data.train)
    assert len(counts) == 15 and set(counts.values()) == {2}
    val_counts = Counter(r["intent"] for r in data.labels.values())
    assert set(val_counts) == set(counts), "every intent occurs in val"
    assert max(val_counts.values()) >= 3 * min(val_counts.values()), "traffic is uneven, like real traffic"
    tickets = [r["ticket"] for r in data.train + data.val]
    assert len(set(tickets)) == len(tickets), "no val ticket repeats a training ticket"
    assert all("intent" not in r and "ideal_reply" not in r for r in data.val), "val rows carry no labels"
    for row in data.train + list(data.labels.values()):
        sentences = len(re.findall(r"[.!?](?:\s|$)", row["ideal_reply"]))
        assert 1 <= sentences <= 5, row["ideal_reply"]


def test_heldout_taxonomies_are_disjoint_and_spelled_differently():
    taxonomies = {p: set(load_set(HELDOUT / p).taxonomy) for p in PRODUCTS}
    taxonomies["northstar"] = set(load_set(REPO / "data" / "samples" / "northstar").taxonomy)
    names = [n for t in taxonomies.values() for n in t]
    assert len(names) == len(set(names))
    styles = {p: {("dot" if "." in n else "dash" if " - " in n else "upper" if n.isupper() else
                   "snake" if "_" in n else "camel") for n in t} for p, t in taxonomies.items()}
    assert all(len(s) == 1 for s in styles.values()) and len({s.pop() for s in styles.values()}) == 5


@pytest.fixture
def tiny_set(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [
        {"id": "t1", "ticket": "refund my order", "intent": "Refund", "ideal_reply": "We refund within 5 days."},
        {"id": "t2", "ticket": "cancel my plan", "intent": "Cancel", "ideal_reply": "Cancel under Settings."},
        {"id": "t3", "ticket": "money back please", "intent": "Refund", "ideal_reply": "Refunds take 5 days."},
    ])
    write_jsonl(tmp_path / "val.jsonl", [{"id": f"v{k}", "ticket": f"ticket {k}"} for k in range(1, 5)])
    write_jsonl(tmp_path / "val_labels.jsonl", [
        {"id": "v1", "intent": "Refund", "ideal_reply": "We refund within 5 days."},
        {"id": "v2", "intent": "Cancel", "ideal_reply": "Cancel under Settings."},
        {"id": "v3", "intent": "Cancel", "ideal_reply": "Cancel under Settings."},
        {"id": "v4", "intent": "Refund", "ideal_reply": "Refunds take 5 days."},
    ])
    return tmp_path


def test_score_counts_exact_matches_spelling_and_missing_rows(tiny_set):
    (tiny_set / "results.json").write_text(json.dumps({"training": {}, "predictions": [
        {"id": "v1", "predicted_intent": "Refund", "prediction": "x"},   # right
        {"id": "v2", "predicted_intent": "cancel", "prediction": "x"},   # right intent, wrong spelling
        {"id": "v3", "predicted_intent": "Refund", "prediction": "x"},   # wrong
        {"id": "zz", "predicted_intent": "Refund", "prediction": "x"},   # not a val id; v4 is missing
    ]}))
    result = score(load_set(tiny_set), load_results(tiny_set / "results.json"), embed=None)
    assert result == {"n": 4, "missing": 1, "unknown_ids": 1, "intent_accuracy": 0.25, "in_taxonomy": 0.5,
                      "reply_cosine": None}


def test_majority_breaks_ties_by_training_order(tiny_set, tmp_path):
    data = load_set(tiny_set)
    assert {p["predicted_intent"] for p in majority_baseline(data)} == {"Refund"}
    assert score(data, majority_baseline(data), embed=None)["intent_accuracy"] == 0.5
    data.train = [r for r in data.train if r["id"] != "t3"]  # now a 1:1 tie, first seen wins
    assert majority_baseline(data)[0]["predicted_intent"] == "Refund"


def test_bad_sets_and_results_are_one_clear_error(tiny_set):
    with pytest.raises(UserError, match="not a folder"):
        load_set(tiny_set / "nope")
    write_jsonl(tiny_set / "val_labels.jsonl", [{"id": "v1", "intent": "Refund", "ideal_reply": "r"}])
    with pytest.raises(UserError, match=r"val_labels.jsonl: ids do not match val.jsonl .*'v2'"):
        load_set(tiny_set)
    write_jsonl(tiny_set / "val_labels.jsonl", [{"id": f"v{k}", "intent": "Upgrade", "ideal_reply": "r"}
                                                for k in range(1, 5)])
    with pytest.raises(UserError, match=r"val_labels.jsonl:1: intent 'Upgrade' does not occur in train.jsonl"):
        load_set(tiny_set)
    (tiny_set / "results.json").write_text(json.dumps({"predictions": [{"intent": "Refund"}]}))
    with pytest.raises(UserError, match=r"predictions\[0\]: expected an object with an 'id'"):
        load_results(tiny_set / "results.json")


@pytest.mark.slow
def test_baselines_and_results_with_the_bundled_minilm(tiny_set, tmp_path, capsys):
    perfect = [{"id": r["id"], "predicted_intent": r["intent"], "prediction": r["ideal_reply"]}
               for r in map(json.loads, (tiny_set / "val_labels.jsonl").read_text().splitlines())]
    perfect[3]["prediction"] = ""  # an empty reply scores 0
    (tiny_set / "results.json").write_text(json.dumps({"predictions": perfect}))
    assert main(["--data", str(tiny_set), "--results", str(tiny_set / "results.json"),
                 "--out", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())["scores"]
    assert scores["run.py"]["intent_accuracy"] == 1.0
    assert scores["run.py"]["reply_cosine"] == pytest.approx(0.75, abs=1e-3)
    assert "run.py" in capsys.readouterr().out
    # on real held-out tickets, retrieval beats the constant guess on both metrics
    real = evaluate(HELDOUT / "parcelpost")["scores"]
    assert real["nearest"]["intent_accuracy"] > real["majority"]["intent_accuracy"] + 0.3
    assert real["nearest"]["reply_cosine"] > real["majority"]["reply_cosine"]
