"""The LLM judge against the people who review: agreement per rubric score and the threshold that agrees best.

    stats(store)                                     # summary(store) + "judge_vs_human" (`python -m review_app stats`)
    judge_vs_human(store.counted_decisions())        # per task: per score, kappa and accuracy at every threshold
    calibrated_thresholds("runs/fin/review.db", task="fin_sentiment")   # what generate.py --judge-calibrated-from uses

A person "keeps" a sample when they approved it, or edited it and kept its claimed label; a reject or
a relabel drops it. The judge "keeps" it at threshold t of a score when that score is at least t.
Only independent votes count (cast before anyone else's vote could be seen, as for inter-annotator
agreement), and only items the judge scored. Each (person, item) vote is one comparison: Cohen's kappa
(scikit-learn's) and raw accuracy of the judge's keep against the person's, at every option value of
the score, and the best: the highest kappa (ties: higher accuracy, then the lower threshold), when it
is above 0 (better than chance); none otherwise.

A judge that filtered before the queue (`mode: filter`) leaves only what it kept: agreement then covers
thresholds at or above the one it ran with. Run it with `mode: flag` to calibrate its rejections too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy.engine import make_url

from core.errors import UserError, fail
from core.tasks import load_task
from review_app.metrics import cohen_kappa, summary
from review_app.store import ReviewStore

MIN_DECISIONS = 20  # fewer independent votes on judged items: too few to move a threshold by


def human_keeps(decision: dict[str, Any]) -> bool:
    """Approved, or edited with the claimed label kept (a reject or a relabel drops the sample)."""
    return decision["action"] != "reject" and decision["label_after"] == decision["claimed_label"]


def _judge_details(record_json: str) -> dict[str, Any] | None:
    for verdict in json.loads(record_json).get("verdicts", []):
        details = verdict.get("details") or {}
        if verdict.get("name") == "judge" and details.get("parsed") and isinstance(details.get("scores"), dict):
            return details
    return None


def _agreement(judge: list[bool], people: list[bool]) -> dict[str, Any]:
    kappa = cohen_kappa(["keep" if x else "drop" for x in judge], ["keep" if x else "drop" for x in people])
    hits = sum(a == b for a, b in zip(judge, people, strict=True))
    return {"kappa": None if kappa is None else round(kappa, 4),
            "accuracy": round(hits / len(people), 4) if people else None,
            "judge_keeps": round(sum(judge) / len(judge), 4) if judge else None}


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The threshold that agrees best, or None where none agrees better than chance (kappa > 0)."""
    defined = [r for r in rows if r["kappa"] is not None]
    best = max(defined, key=lambda r: (r["kappa"], r["accuracy"], -r["threshold"])) if defined else None
    return best if best is not None and best["kappa"] > 0 else None


def _options(task: str, name: str, seen: set[int]) -> list[int]:
    """A score's option values from the task's rubric (where it loads here), and every value seen."""
    values = set(seen)
    try:
        rubric = load_task(task).rubric
        if rubric is not None and name in rubric.names:
            values |= set(rubric.score(name).values)
    except UserError:
        pass
    return sorted(values)


def judge_vs_human(decided: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task with judged items: the judge's keep vs the people's, per score and threshold."""
    by_task: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for d in decided:
        if d.get("phase") != "independent":
            continue
        details = _judge_details(d["record_json"])
        if details is not None:
            by_task[d["task"]].append((d, details))
    out = []
    for task, rows in sorted(by_task.items()):
        people = [human_keeps(d) for d, _ in rows]
        names = list(dict.fromkeys(n for _, det in rows for n in det["scores"]))
        scores = {}
        for name in names:
            pairs = [(int(det["scores"][name]), keep) for (_, det), keep in zip(rows, people, strict=True)
                     if name in det["scores"]]
            grid = [{"threshold": t, **_agreement([s >= t for s, _ in pairs], [k for _, k in pairs])}
                    for t in _options(task, name, {s for s, _ in pairs})]
            scores[name] = {"decisions": len(pairs), "thresholds": grid, "best": _best(grid)}
        entry = {"task": task, "decisions": len(rows), "items": len({d["item_id"] for d, _ in rows}),
                 "annotators": len({d["annotator"] for d, _ in rows}),
                 "people_keep": round(sum(people) / len(people), 4),
                 "verdict": _agreement([bool(det.get("keep")) for _, det in rows], people),
                 "judge_models": sorted({str(det.get("model")) for _, det in rows}), "scores": scores}
        if all(det.get("keep") for _, det in rows) and any(det.get("mode") == "filter" for _, det in rows):
            entry["note"] = ("the judge filtered before the queue, so every item here is one it kept: run it "
                             "with `mode: flag` to calibrate its rejections too")
        out.append(entry)
    return out


def stats(store: ReviewStore) -> dict[str, Any]:
    """The dashboard's numbers (`review_app.metrics.summary`) and the judge's agreement with people."""
    return {**summary(store), "judge_vs_human": judge_vs_human(store.counted_decisions())}


def calibrated_thresholds(db: str, *, task: str, min_decisions: int = MIN_DECISIONS) -> dict[str, Any]:
    """The best threshold of every score of `task`'s judge in a review database, and what it rests on
    (recorded in the run's manifest). Refuses a database with fewer than `min_decisions` votes on judged
    items of the task, or without any score a threshold can be chosen for."""
    store = ReviewStore(db, create=False)
    try:
        found = next((t for t in judge_vs_human(store.counted_decisions()) if t["task"] == task), None)
    finally:
        store.close()
    source = make_url(str(db)).render_as_string(hide_password=True) if "://" in str(db) else str(db)
    if found is None or found["decisions"] < min_decisions:
        fail(f"{source}: {found['decisions'] if found else 0} independent review decisions on items the judge "
             f"scored for task '{task}'; --judge-calibrated-from needs {min_decisions} (run the judge, with "
             "`mode: flag`, and review its samples first)")
    best = {name: s["best"] for name, s in found["scores"].items() if s["best"] is not None}
    if not best:
        fail(f"{source}: at no threshold does the judge agree with the people better than chance (Cohen's "
             f"kappa <= 0 or undefined for every score over {found['decisions']} decisions): a judge model "
             "that tells samples apart is needed first (python -m validators judge-check)")
    return {"source": source, "task": task, "decisions": found["decisions"], "items": found["items"],
            "thresholds": {name: b["threshold"] for name, b in best.items()},
            "agreement": {name: {k: b[k] for k in ("kappa", "accuracy")} for name, b in best.items()}}
