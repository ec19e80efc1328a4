"""The data-value report on the real shared English data (`../shared/datasets`, skipped where absent).

Slow (the data stage on the full release, then MiniLM over a few thousand texts): `make test-all`.
"""

from __future__ import annotations

import random

import pytest

from core.io import read_records
from evaluator.data_value import data_value

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def english(shared_datasets, tmp_path_factory):
    """(real, other, eval): the data stage's English train split in two disjoint halves, and its eval split."""
    from data.prepare import prepare

    out = tmp_path_factory.mktemp("shared")
    prepare(sources=[str(shared_datasets)], out=out, eda=False)
    train = [r for r in read_records(out / "data" / "train.jsonl") if r.lang == "en"]
    held = [r for r in read_records(out / "data" / "eval.jsonl") if r.lang == "en"]
    return train[0::2], train[1::2], held


def test_a_set_drawn_from_the_real_data_scores_near_the_maximum(english, tmp_path):
    real, other, held = english
    result = data_value("fin_sentiment", real, held, other[:500], tmp_path, n_bootstrap=200)
    dist = result["by_lang"]["en"]["fidelity"]["distribution"]
    ceiling = dist["real_vs_real"]
    assert dist["n"] == 500
    assert dist["mauve"]["score"] >= 0.9 and dist["precision"] >= 0.75 and dist["recall"] >= 0.75
    for key in ("precision", "recall"):
        assert abs(dist[key] - ceiling[key]) <= 0.1
    assert abs(dist["mauve"]["score"] - ceiling["mauve"]) <= 0.1
    assert "looks like the real data and covers much of it" in result["verdict"]


def test_label_shuffled_synthetic_data_lowers_real_eval_accuracy_and_the_report_says_so(english, tmp_path):
    real, other, held = english
    labels = [r.labels["label"] for r in other]
    random.Random(0).shuffle(labels)
    shuffled = [r.model_copy(update={"labels": {"label": label}, "source": "synthetic"})
                for r, label in zip(other, labels, strict=True)]
    result = data_value("fin_sentiment", real, held, shuffled, tmp_path, n_bootstrap=200)
    util = result["by_lang"]["en"]["utility"]
    acc = {name: row["accuracy"] for name, row in util["train"].items()}
    assert acc["synthetic"] < acc["real"] - 0.15
    assert acc["real_synthetic"] < acc["real"]
    only = util["comparisons"]["synthetic_vs_real"]
    assert only["accuracy_delta"] < 0 and only["mcnemar_p"] < 0.05
    assert util["label_agreement"]["agreement"] < util["label_agreement"]["real_eval_accuracy"] - 0.15
    report = (tmp_path / "report.md").read_text()
    assert "significantly lower" in result["verdict"] and "significantly lower" in report
    assert "many synthetic labels look wrong" in report
