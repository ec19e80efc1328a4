"""Into the queue and out of it: enqueue records or plain rows, export the curated ones.

    enqueue_file(store, "runs/fin/accepted.jsonl")            # twice -> added 0 the second time
    enqueue_file(store, "samples.csv", task="fin_sentiment", columns=ColumnMap(lang="en"))  # plain rows
    export_curated(store, "runs/fin/curated.jsonl")           # approved + edited records, atomically
    export_curated(store, "runs/fin/curated.jsonl", fmt="hf") # + runs/fin/curated_hf/ (datasets + card)
    export_curated(store, "runs/fin/dpo.jsonl", fmt="dpo")    # preference pairs from human edits (TRL DPO):
                                                              # generation pairs and classification pairs

Plain rows (`{text, label}` JSONL, CSV, TSV, Parquet) are read by `core.inputs`, the table reader of
every stage, so a row it cannot use is the same `file:line: field ...` error. Every exported record
is its item's resolved version (see `review_app.resolve`), with the reasons of the votes for that
version only; the result says how many items were left out because they are still pending or disputed.
What an exported record holds: docs/review.md#export-exportpy
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.errors import UserError, fail
from core.inputs import ColumnMap, is_record_file, load_inputs
from core.io import iter_jsonl, read_records, write_jsonl_atomic, write_text_atomic
from core.records import Record, Review, record_id
from core.task_spec import Task
from core.tasks import load_task
from review_app.metrics import summary
from review_app.paths import check_output_file, check_output_folder, inside
from review_app.store import EnqueueResult, ReviewStore, label_field

FORMATS = ("jsonl", "hf", "dpo")
_MARKER = ".seedloop_export"


def _plain_rows(path: Path) -> bool:
    """True when the first row of a JSONL file is a plain row, not a Record (no `task`, no `labels`)."""
    first = next(iter_jsonl(path), None)
    return first is not None and "task" not in first[1] and "labels" not in first[1]


def queue_input(path: str | Path, *, task: str | None = None, columns: ColumnMap | None = None) -> list[Record]:
    """The records to queue from `path`: Record JSONL (the validators' accepted.jsonl) as it is, or,
    given `task`, plain rows through `core.inputs.load_inputs` with `columns` (default: `text` and
    `label` columns, language 'en')."""
    name = str(path)
    if is_record_file(name) and not _plain_rows(Path(name)):
        return load_inputs([name], load_task(task)) if task else read_records(name)
    if task is None:
        fail(f"{name}: plain rows, not records: pass --task NAME (and --lang, or --text-col / --label-col "
             "when the columns have other names)")
    return load_inputs([name], load_task(task), columns or ColumnMap())


def enqueue_file(store: ReviewStore, path: str | Path, *, task: str | None = None, columns: ColumnMap | None = None,
                 reviews: int = 1, double_fraction: float = 0.0, seed: int = 0) -> EnqueueResult:
    """Queue the records of `path` (see `queue_input`); records already queued are skipped."""
    records = queue_input(path, task=task, columns=columns)
    return store.enqueue(tqdm(records, desc="enqueue", unit="rec", disable=len(records) < 5000),
                         reviews=reviews, double_fraction=double_fraction, seed=seed, source_file=str(path))


def curated_records(store: ReviewStore) -> list[Record]:
    """Approved and edited items as records ready for training, in queue order."""
    out = []
    done = [*store.list_items(status="approved"), *store.list_items(status="edited")]
    for item in tqdm(sorted(done, key=lambda i: i.id), desc="export", unit="rec", disable=len(done) < 5000):
        text, labels, counted = store.final_state(item.id)
        last = counted[-1]
        reviewers = sorted({d["annotator"] for d in counted})
        # Only the votes for the winning version say why it is right; a losing reject's "wrong label"
        # stays on its own vote in the log, never on the record that was kept.
        reasons = "; ".join(dict.fromkeys(d["reason"] for d in counted
                                          if d["reason"] and d["action"] != "reject" and d["version"] == item.version))
        review = Review(status=item.status, reviewer=",".join(reviewers),
                        time=datetime.fromtimestamp(last["created_at"], UTC), reason=reasons)
        rec = item.record
        if item.status == "edited":
            provenance = {**rec.provenance, "original": {"id": rec.id, "text": rec.text, "labels": rec.labels,
                                                         "source": rec.source}}
            rec = rec.model_copy(update={"id": record_id(rec.task, rec.lang, text), "text": text, "labels": labels,
                                         "source": "edited", "provenance": provenance})
        out.append(rec.model_copy(update={"review": review}))
    return out


def unfinished(store: ReviewStore) -> dict[str, int]:
    """Items an export leaves out because nobody has settled them yet: `pending` and `disputed`."""
    status = store.counts("status")
    return {"pending": status.get("pending", 0), "disputed": status.get("disputed", 0)}


def export_curated(store: ReviewStore, out: str | Path, *, fmt: str = "jsonl", hf_dir: str | Path | None = None,
                   require_complete: bool = False) -> dict[str, Any]:
    """Write the curated JSONL (and for `fmt="hf"` a `datasets` folder with a dataset card).
    Returns what was written (counts and paths) and how many items are still `pending` or `disputed`;
    `require_complete` refuses, writing nothing, while any are."""
    if fmt not in FORMATS:
        fail(f"unknown export format '{fmt}' (choose from: {', '.join(FORMATS)})")
    out_path = check_output_file(out)
    left = unfinished(store)
    if require_complete and any(left.values()):
        fail(f"the review is not finished: {left['pending']} items still pending, {left['disputed']} disputed; "
             f"nothing written (without --require-complete the export writes the resolved items only)")
    if fmt == "dpo":
        return {**export_dpo(store, out_path), **left}
    records = curated_records(store)
    write_jsonl_atomic(out_path, records)
    result: dict[str, Any] = {"out": str(out_path), "records": len(records),
                              "edited": sum(r.source == "edited" for r in records), **left}
    if fmt == "hf":
        folder = check_output_folder(hf_dir or out_path.with_name(out_path.stem + "_hf"))
        write_hf(store, records, folder)
        result["hf_dir"] = str(folder)
    return result


def _answer(task: str, text: str, labels: dict[str, str]) -> str:
    """A sample as the generator writes it: JSON of the input field and the outputs, input first."""
    try:
        input_name = load_task(task).input_name
    except UserError:
        input_name = "text"
    return json.dumps({input_name: text, **labels}, ensure_ascii=False)


def dpo_pairs(store: ReviewStore) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Preference pairs from items whose resolved version is a human edit, in TRL's conversational
    preference format (`prompt` / `chosen` / `rejected` message lists, what `DPOTrainer` reads) plus
    a `kind` column:

    - `generation` (the text or another output was edited, the label kept): the generation prompt
      that asked for that label (`provenance.prompt`), chosen = the edited sample, rejected = the
      model's original sample, each as the generator's JSON answer. Teaches the generator.
    - `classification` (the label was corrected): the task's classification prompt with the text
      (the reviewer's text when they edited it too), chosen = the answer with the corrected label,
      rejected = the answer with the claimed one. Teaches the classifier. No generation pair is made
      from a relabel: the prompt asked for the claimed label, so preferring a sample of another
      label would teach the generator to disobey its prompt.

    Returns (pairs, counts): counts of `generation`, `classification`, `skipped_no_prompt` (a text edit
    whose record has no generation prompt) and `skipped_unknown_task` (a relabel of a task that is
    not built in, so no classification prompt)."""
    pairs: list[dict[str, Any]] = []
    counts: Counter[str] = Counter(generation=0, classification=0, skipped_no_prompt=0, skipped_unknown_task=0)
    for item in store.list_items(status="edited"):
        rec = item.record
        name = label_field(rec.task)
        claimed, corrected = rec.labels.get(name, ""), item.labels.get(name, "")
        if corrected == claimed:
            prompt = rec.provenance.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                counts["skipped_no_prompt"] += 1  # real data or an older run: no prompt to prefer an answer for
                continue
            pairs.append({
                "prompt": Task.generation_messages(prompt),
                "chosen": [{"role": "assistant", "content": _answer(rec.task, item.text, item.labels)}],
                "rejected": [{"role": "assistant", "content": _answer(rec.task, rec.text, dict(rec.labels))}],
                "kind": "generation",
            })
            counts["generation"] += 1
            continue
        try:
            task = load_task(rec.task)
        except UserError:
            counts["skipped_unknown_task"] += 1
            continue
        # The claimed answer keeps the other outputs as the model wrote them; the chosen one is the
        # reviewer's whole answer.
        pairs.append({
            "prompt": task.classify_messages(item.text, rec.lang, variant=0, source=rec.provenance.get("dataset")),
            "chosen": [{"role": "assistant", "content": task.answer(item.labels)}],
            "rejected": [{"role": "assistant", "content": task.answer(dict(rec.labels))}],
            "kind": "classification",
        })
        counts["classification"] += 1
    return pairs, counts


def export_dpo(store: ReviewStore, out: Path) -> dict[str, Any]:
    """Write `dpo_pairs` as JSONL (atomically): `datasets.load_dataset("json", data_files=out)` gives
    the `prompt` / `chosen` / `rejected` columns `trl.DPOTrainer` takes, and `kind` to pick one sort
    (`ds.filter(lambda r: r["kind"] == "generation")`: the generator's pairs)."""
    pairs, counts = dpo_pairs(store)
    write_text_atomic(out, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    return {"out": str(out), "records": len(pairs), **counts}


def _flat(rec: Record) -> dict[str, Any]:
    # Arrow needs one type per column: nested free-form dicts travel as JSON strings.
    return {"id": rec.id, "task": rec.task, "lang": rec.lang, "text": rec.text, **rec.labels,
            "source": rec.source, "review_status": rec.review.status, "reviewer": rec.review.reviewer or "",
            "provenance": json.dumps(rec.provenance, ensure_ascii=False, default=str),
            "meta": json.dumps(rec.meta, ensure_ascii=False, default=str)}


def write_hf(store: ReviewStore, records: list[Record], folder: Path) -> None:
    """A `datasets.load_from_disk` folder plus README.md (dataset card), swapped in atomically.
    An existing folder is only replaced when an earlier export made it."""
    from datasets import Dataset

    if folder.exists() and not (folder / _MARKER).is_file():
        fail(f"{folder}: exists and was not made by an export; choose another --hf-dir or remove it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        rows = [_flat(r) for r in records]
        Dataset.from_list(rows).save_to_disk(str(inside(tmp, "data")))
        write_text_atomic(inside(tmp, "README.md"), dataset_card(store, records))
        write_text_atomic(inside(tmp, _MARKER), "made by python -m review_app export\n")
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def dataset_card(store: ReviewStore, records: list[Record]) -> str:
    s = summary(store)
    tasks = sorted({r.task for r in records}) or ["(none)"]
    langs = Counter(r.lang for r in records)
    labels = Counter(r.labels.get(label_field(r.task), "") for r in records)
    models = Counter(str(r.provenance.get("model", "")) for r in records if r.provenance.get("model"))
    strategies = Counter(json.dumps(r.provenance.get("sampling"), sort_keys=True) for r in records
                         if r.provenance.get("sampling"))
    ia, mh, third = s["inter_annotator"], s["model_vs_human"], s["third_vote"]
    return "\n".join([
        "---", f"language: [{', '.join(sorted(langs))}]", "tags: [synthetic, human-reviewed, seedloop]", "---", "",
        f"# Curated data: {', '.join(tasks)}", "",
        "Generated from seed examples, checked by validators, then reviewed one item at a time by people "
        "(approve, edit or reject) in the seedloop review app. Load with `datasets.load_from_disk('data')`.", "",
        "Each record is its item's **resolved version**. Until an item has the decisions it needs, every "
        "reviewer is shown the original alone and votes independently: approve votes for it, an edit for "
        "the new text and labels, reject for rejecting. The version (or reject) with a strict majority of "
        "the votes wins; on a split a third reviewer, shown each version with who voted for it, breaks the "
        "tie, and a three-way split goes to a reviewer with the adjudicator role, whose ruling settles it. "
        "Records whose winning version is an edit have `source = edited` and the original in "
        "`provenance.original`. Agreement below is computed over the independent votes only; acceptance "
        "counts resolved items (approved as is: the original survived unchanged).", "",
        "## Counts", "",
        f"- records: {len(records)} ({sum(r.source == 'edited' for r in records)} edited by a reviewer)",
        f"- queue status: {json.dumps(s['status'])}",
        f"- languages: {json.dumps(dict(langs.most_common()), ensure_ascii=False)}",
        f"- labels: {json.dumps(dict(labels.most_common()), ensure_ascii=False)}", "",
        "## Acceptance by prompt template", "",
        _table(s["acceptance_by_template"], ["template_id", "items", "acceptance", "approved_as_is"]), "",
        "## Acceptance by sampling strategy", "",
        _table(s["acceptance_by_strategy"], ["strategy", "items", "acceptance", "approved_as_is"]), "",
        "## Agreement", "",
        f"- inter-annotator (Krippendorff's alpha, nominal, `krippendorff` package) on {ia['items']} items "
        f"decided by two or more of {ia['raters']} reviewers: {ia['alpha']} (raw pairwise agreement "
        f"{ia['raw_agreement']}); raw agreement on the decision (reject, or the exact version voted for): "
        f"{ia['decision']['raw_agreement']}; items that needed a third vote: {third['items']} of {third['of']}",
        *[f"  - Cohen's kappa (scikit-learn) {p['a']} vs {p['b']} on {p['items']} items: {p['kappa']}"
          for p in ia["pairs"]],
        f"- model (self-consistency majority) vs human on {mh['items']} items: agreement {mh['agreement']}, "
        f"kappa {mh['kappa']}; generator's label kept by reviewers: {mh['claimed_label_kept']}", "",
        "## Generation settings", "",
        f"- models: {json.dumps(dict(models), ensure_ascii=False)}",
        *[f"- sampling {k}: {n} records" for k, n in strategies.most_common()], "",
    ])
