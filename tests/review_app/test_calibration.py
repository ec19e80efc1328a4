"""The LLM judge against planted review decisions: Cohen's kappa and accuracy per rubric score and threshold
(scikit-learn's kappa on the vectors the decisions make), the best threshold, `stats`, and the refusal of a
database too small to calibrate on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from core.errors import UserError
from core.records import Record, Verdict
from review_app.calibration import MIN_DECISIONS, calibrated_thresholds, judge_vs_human
from review_app.store import ReviewStore

# (plausible, label_right) the judge gave each item, and what the people did: "keep" (approve), "edit"
# (new text, label kept), "relabel", "reject"; two-vote items list both votes.
PLAN = [
    ((3, 3), ["keep"]), ((2, 3), ["keep"]), ((3, 3), ["edit"]), ((1, 3), ["keep"]), ((3, 3), ["keep"]),
    ((3, 2), ["reject"]), ((2, 2), ["relabel"]), ((3, 1), ["reject"]), ((1, 1), ["reject"]), ((2, 1), ["relabel"]),
    ((3, 3), ["keep", "keep"]), ((2, 2), ["reject", "reject"]), ((3, 3), ["keep"]), ((1, 2), ["reject"]),
    ((2, 3), ["edit"]), ((3, 2), ["keep"]), ((1, 1), ["reject"]), ((3, 3), ["keep"]), ((2, 3), ["keep"]),
    ((3, 1), ["reject"]),
]
SPLIT = ((3, 2), ["keep", "reject"])  # then a tie-break by cat: not independent, left out
PEOPLE = ("ana", "bob")


def _record(i: int, plausible: int, label_right: int, mode: str = "flag") -> Record:
    scores = {"plausible": plausible, "label_right": label_right}
    keep = plausible >= 2 and label_right >= 2
    judge = Verdict(name="judge", passed=True, score=0.5, details={
        "scores": scores, "keep": keep, "thresholds": {"plausible": 2, "label_right": 2}, "parsed": True,
        "mode": mode, "model": "planted-judge", "reasoning": f"<b>reason {i}</b>", "keep_rule": "all",
        "meanings": {"plausible": "p", "label_right": "l"}})
    return Record.new(task="fin_sentiment", lang="en", text=f"Nordvik sample {i}: sales rose {i}%.",
                      labels={"label": "positive"}, source="synthetic", verdicts=[judge])


def judged_db(path: Path, plan=PLAN, split: bool = True, mode: str = "flag") -> Path:
    """A review database of judged items with the planted decisions (`PLAN`, and the `SPLIT` item)."""
    store = ReviewStore(path)
    rows = [*plan, SPLIT] if split else list(plan)
    for i, ((p, lab), votes) in enumerate(rows):
        store.enqueue([_record(i, p, lab, mode)], reviews=len(votes))
    for item, (_, votes) in zip(store.list_items(), rows, strict=True):
        for who, vote in zip(PEOPLE, votes, strict=False):
            if vote == "keep":
                store.decide(item.id, who, "approve")
            elif vote == "edit":
                store.decide(item.id, who, "edit", text=item.text + " (edited)")
            elif vote == "relabel":
                store.decide(item.id, who, "edit", label="negative")
            else:
                store.decide(item.id, who, "reject", reason="unnatural")
    if split:
        store.decide(store.list_items()[-1].id, "cat", "approve")  # the tie-break
    store.close()
    return path


def _expected() -> tuple[list[tuple[int, int]], list[bool]]:
    """(scores, person keeps) per independent vote, by hand from the plan."""
    scores, keeps = [], []
    for pair, votes in [*PLAN, SPLIT]:
        for vote in votes:
            scores.append(pair)
            keeps.append(vote in ("keep", "edit"))
    return scores, keeps


def test_kappa_and_accuracy_per_score_and_threshold_match_scikit_learn(tmp_path):
    store = ReviewStore(judged_db(tmp_path / "review.db"))
    [result] = judge_vs_human(store.counted_decisions())
    scores, keeps = _expected()
    assert result["task"] == "fin_sentiment" and result["decisions"] == len(keeps) == 24
    assert result["items"] == 21 and result["annotators"] == 2 and result["judge_models"] == ["planted-judge"]
    people = ["keep" if k else "drop" for k in keeps]
    for index, name in enumerate(("plausible", "label_right")):
        rows = result["scores"][name]["thresholds"]
        assert [r["threshold"] for r in rows] == [1, 2, 3]
        kappas = {}
        for row in rows:
            judge = ["keep" if s[index] >= row["threshold"] else "drop" for s in scores]
            kappa = None if len(set(judge) | set(people)) == 1 else cohen_kappa_score(judge, people)
            assert row["kappa"] == (None if kappa is None else pytest.approx(kappa, abs=1e-4)), (name, row)
            assert row["accuracy"] == pytest.approx(sum(a == b for a, b in zip(judge, people, strict=True)) / 24, abs=1e-4)
            kappas[row["threshold"]] = kappa
        best = result["scores"][name]["best"]
        defined = {t: k for t, k in kappas.items() if k is not None}
        assert best["threshold"] == max(defined, key=defined.get)
    # label_right = 3 is what the people keep, but for the split item's reject and the edit's keep: it wins
    assert result["scores"]["label_right"]["best"]["threshold"] == 3
    assert result["scores"]["label_right"]["best"]["kappa"] > 0.8
    assert result["scores"]["plausible"]["best"]["kappa"] < result["scores"]["label_right"]["best"]["kappa"]
    verdict = ["keep" if p >= 2 and lab >= 2 else "drop" for p, lab in scores]
    assert result["verdict"]["kappa"] == pytest.approx(cohen_kappa_score(verdict, people), abs=1e-4)
    assert "note" not in result  # a flagging judge: its rejections reached the people too


def test_calibrated_thresholds_and_the_refusal_of_too_few_decisions(tmp_path):
    db = judged_db(tmp_path / "review.db")
    got = calibrated_thresholds(str(db), task="fin_sentiment")
    assert got["thresholds"] == {"label_right": 3, "plausible": got["thresholds"]["plausible"]}
    assert got["source"] == str(db) and got["decisions"] == 24 and got["agreement"]["label_right"]["kappa"] > 0.8
    small = judged_db(tmp_path / "small.db", plan=PLAN[:5], split=False)
    with pytest.raises(UserError) as err:
        calibrated_thresholds(str(small), task="fin_sentiment")
    assert "5 independent review decisions on items the judge scored for task 'fin_sentiment'" in str(err.value)
    assert f"needs {MIN_DECISIONS}" in str(err.value)
    with pytest.raises(UserError, match="0 independent review decisions"):
        calibrated_thresholds(str(db), task="support_intent")
    # A judge that gives every sample the option listed first agrees with nobody: no threshold to take
    positional = judged_db(tmp_path / "positional.db", plan=[((1, 1), votes) for _, votes in PLAN], split=False)
    with pytest.raises(UserError, match="at no threshold does the judge agree with the people better than chance"):
        calibrated_thresholds(str(positional), task="fin_sentiment")


def test_a_filtering_judge_is_said_to_cover_only_what_it_kept(tmp_path):
    kept = [(pair, votes) for pair, votes in PLAN if pair[0] >= 2 and pair[1] >= 2]
    store = ReviewStore(judged_db(tmp_path / "review.db", plan=kept, split=False, mode="filter"))
    [result] = judge_vs_human(store.counted_decisions())
    assert "mode: flag" in result["note"]
    assert result["verdict"]["judge_keeps"] == 1.0 and result["verdict"]["kappa"] == 0.0  # kept all: chance


def test_stats_command_prints_the_judges_agreement(tmp_path, capsys):
    from review_app.cli import main

    db = judged_db(tmp_path / "review.db")
    assert main(["stats", "--db", str(db)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["judge_vs_human"][0]["scores"]["label_right"]["best"]["threshold"] == 3
    assert printed["total"] == 21  # the dashboard's numbers are all still there
