"""Export of curated records (JSONL and a `datasets` folder), agreement numbers, path checks."""

from __future__ import annotations

import json
import os

import pytest
from sklearn.metrics import cohen_kappa_score

from core.io import read_records
from core.records import record_id
from review_app import ReviewStore, enqueue_file, export_curated
from review_app.cli import main
from review_app.metrics import cohen_kappa, krippendorff_alpha, summary
from tests.review_app.conftest import make_records
from tests.review_app.test_store import cli


@pytest.fixture
def reviewed(tmp_path, accepted):
    """12 items: 6 approved, 3 edited, 3 rejected; decided through the Python API like the demo."""
    store = ReviewStore(tmp_path / "review.db")
    enqueue_file(store, accepted)
    for n, item in enumerate(store.list_items(status="pending")):  # no claim needed without a live lease
        if n % 4 == 1:
            store.decide(item.id, "ana", "edit", label="neutral", text=f"Edited text {n}", reason="fixed")
        elif n % 4 == 3:
            store.decide(item.id, "ana", "reject", reason="wrong label")
        else:
            store.decide(item.id, "auto", "approve", reason="unattended")
    return store


def test_export_writes_approved_and_edited_records(tmp_path, reviewed, accepted):
    out = tmp_path / "curated.jsonl"
    res = cli("export", "--db", str(tmp_path / "review.db"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "wrote 9 curated records (3 edited)" in res.stdout
    records = read_records(out)
    originals = {r.id: r for r in read_records(accepted)}
    edited = [r for r in records if r.source == "edited"]
    assert len(edited) == 3 and len(records) == 9
    for rec in edited:
        original = rec.provenance["original"]
        assert rec.text.startswith("Edited text") and rec.labels == {"label": "neutral"}
        assert rec.id == record_id(rec.task, rec.lang, rec.text) != original["id"]
        assert original["text"] == originals[original["id"]].text
        assert rec.review.status == "edited" and rec.review.reviewer == "ana"
    for rec in records:
        if rec.source != "edited":
            assert rec.source == "synthetic" and rec.review.status == "approved" and rec.review.reviewer == "auto"
            assert rec.text == originals[rec.id].text and rec.verdicts == originals[rec.id].verdicts


def test_export_hf_folder_with_dataset_card(tmp_path, reviewed):
    from datasets import load_from_disk

    out = tmp_path / "curated.jsonl"
    assert main(["export", "--db", str(tmp_path / "review.db"), "--out", str(out), "--format", "hf"]) == 0
    folder = tmp_path / "curated_hf"
    ds = load_from_disk(str(folder / "data"))
    assert len(ds) == 9 and set(ds["source"]) == {"synthetic", "edited"}
    card = (folder / "README.md").read_text()
    assert "records: 9 (3 edited" in card and "| direct |" in card and "Krippendorff's alpha" in card
    assert "resolved version" in card and "strict majority" in card
    # a second export (the Python API the demo calls) replaces its own folder; a folder it did not
    # make is never replaced
    assert export_curated(reviewed, out, fmt="hf")["records"] == 9
    (tmp_path / "mine").mkdir()
    res = cli("export", "--db", str(tmp_path / "review.db"), "--out", str(out), "--format", "hf",
              "--hf-dir", str(tmp_path / "mine"))
    assert res.returncode == 2 and "was not made by an export" in res.stderr


def test_paths_are_checked(tmp_path, reviewed):
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("keep me\n")
    link = tmp_path / "out" / "curated.jsonl"
    link.parent.mkdir()
    os.symlink(elsewhere, link)
    res = cli("export", "--db", str(tmp_path / "review.db"), "--out", str(link))
    assert res.returncode == 2 and "symbolic link" in res.stderr and "Traceback" not in res.stderr
    assert elsewhere.read_text() == "keep me\n"
    res = cli("export", "--db", str(tmp_path), "--out", str(tmp_path / "c.jsonl"))
    assert res.returncode == 2 and "is a folder" in res.stderr
    res = cli("stats", "--db", str(tmp_path / "missing.db"))
    assert res.returncode == 2 and "no review database here" in res.stderr
    assert not (tmp_path / "missing.db").exists()


def test_agreement_numbers_are_the_libraries_on_known_examples():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the nominal example:
    # 4 coders, 12 units, missing values; alpha = 0.743.
    table = {"A": "1 2 3 3 2 1 4 1 2 . . .", "B": "1 2 3 3 2 2 4 1 2 5 . 3",
             "C": ". 3 3 3 2 3 4 2 2 5 1 .", "D": "1 2 3 3 2 4 4 1 2 5 1 ."}
    ratings: dict[int, dict[str, str]] = {}
    for coder, row in table.items():
        for unit, value in enumerate(row.split()):
            if value != ".":
                ratings.setdefault(unit, {})[coder] = value
    assert krippendorff_alpha(ratings) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha({0: {"a": "x", "b": "x"}}) is None  # one value only: undefined
    # Cohen's kappa, 50 items: both yes 20, yes/no 5, no/yes 10, both no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4) == cohen_kappa_score(a, b)
    assert cohen_kappa([], []) is None and cohen_kappa(["x", "x"], ["x", "x"]) is None


def test_dashboard_agreement_over_three_annotators(tmp_path):
    """Alpha, kappa and raw agreement over the independent votes of three annotators, who each
    double-review with the other two; the tie-breaker's votes (dan) are left out."""
    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(9), reviews=2)
    pairs_of = [("ana", "bob"), ("bob", "cat"), ("ana", "cat")]
    for n, item in enumerate(store.list_items()):
        first, second = pairs_of[n % 3]
        store.decide(item.id, first, "approve", view=item.view)
        if n % 4:
            store.decide(item.id, second, "approve", view=item.view)
        else:
            store.decide(item.id, second, "reject", reason="wrong label", view=item.view)
    while (item := store.claim("dan")) is not None:  # the three split items get a tie-break
        store.decide(item.id, "dan", "reject", reason="wrong label", view=item.view)
    s = summary(store)
    ia = s["inter_annotator"]
    assert (ia["items"], ia["raters"]) == (9, 3)
    assert ia["raw_agreement"] == round(6 / 9, 3)  # items 0, 4, 8 split; dan's tie-breaks do not count
    ratings: dict[int, dict[str, str]] = {}
    for d in store.counted_decisions():
        if d["annotator"] != "dan":
            ratings.setdefault(d["item_id"], {})[d["annotator"]] = "reject" if d["action"] == "reject" else \
                d["label_after"]
    assert ia["alpha"] == round(krippendorff_alpha(ratings), 3)
    pairs = {(p["a"], p["b"]): p for p in ia["pairs"]}
    assert set(pairs) == {("ana", "bob"), ("ana", "cat"), ("bob", "cat")}  # never dan
    ab = [(r["ana"], r["bob"]) for r in ratings.values() if {"ana", "bob"} <= set(r)]
    assert pairs["ana", "bob"]["items"] == 3
    assert pairs["ana", "bob"]["kappa"] == (None if len(set(sum(ab, ()))) < 2 else
                                            round(cohen_kappa_score(*zip(*ab, strict=True)), 3))
    assert {r["annotator"] for r in s["throughput"]} == {"ana", "bob", "cat", "dan"}
    by_template = {r["template_id"]: r for r in s["acceptance_by_template"]}
    assert set(by_template) == {"direct", "fewshot"}
    assert s["total"] == 9 and sum(s["status"].values()) == 9
    mh = s["model_vs_human"]
    assert mh["items"] == mh_expected(store) and 0 <= mh["agreement"] <= 1
    stats = json.loads(cli("stats", "--db", str(tmp_path / "r.db")).stdout)
    assert stats["inter_annotator"] == ia


def test_one_editor_and_a_tie_break_is_disagreement_and_not_approved_as_is(tmp_path):
    """The issue's case: three double-reviewed items, ana relabels each, bob (shown the original)
    approves it, cat breaks the tie for ana's version. Raw agreement is 0, not 1; all three ended
    edited, so approved as is is 0 and acceptance 1."""
    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(5)[::2], reviews=2)  # three items, all of template 'direct'
    for item in store.list_items():
        other = next(label for label in ("positive", "negative", "neutral") if label != item.label)
        store.decide(item.id, "ana", "edit", label=other, view=item.view)
        shown = store.get(item.id)
        assert shown.is_original and shown.phase == "independent"
        store.decide(item.id, "bob", "approve", view=shown.view)
        split = store.get(item.id)
        store.decide(item.id, "cat", "approve", version=store.versions(item.id)[1]["version"], view=split.view)
    assert store.counts("status") == {"edited": 3}
    s = summary(store)
    assert s["inter_annotator"]["raw_agreement"] == 0.0 and s["inter_annotator"]["raters"] == 2
    [row] = s["acceptance_by_template"]
    assert (row["items"], row["edited"], row["approved_as_is"], row["acceptance"]) == (3, 3, 0.0, 1.0)


def test_agreement_on_the_label_is_not_agreement_on_the_decision(tmp_path):
    """The issue's headline case: ana rewrites the text of two double-reviewed items but keeps their
    label, bob approves the originals. On the label they agree (1.0); on the decision they do not
    (0.0), which is why both items need a third vote: the dashboard says 2 of 3."""
    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(3), reviews=2)
    first, second, third = store.list_items()
    for item in (first, second):
        store.decide(item.id, "ana", "edit", text=f"A rewritten sentence {item.id}.", view=item.view)
        store.decide(item.id, "bob", "approve", view=store.get(item.id).view)
    store.decide(third.id, "ana", "approve", view=third.view)
    store.decide(third.id, "bob", "approve", view=third.view)
    store.decide(first.id, "cat", "approve", view=store.get(first.id).view)  # cat settles the first split
    s = summary(store)
    ia = s["inter_annotator"]
    assert (ia["raw_agreement"], ia["decision"]["raw_agreement"]) == (1.0, round(1 / 3, 3))
    assert s["third_vote"] == {"items": 2, "of": 3}  # one settled by cat, one still waiting for a third vote


def test_export_says_what_is_still_open_and_can_refuse_a_partial_export(tmp_path):
    db = tmp_path / "r.db"
    store = ReviewStore(db)
    store.enqueue(make_records(5), reviews=2)
    a, b, *_ = store.list_items()
    for name in ("ana", "bob"):
        store.decide(a.id, name, "approve")
    store.decide(b.id, "ana", "approve")
    store.decide(b.id, "bob", "edit", label="neutral")
    store.decide(b.id, "cat", "reject", reason="garbled")  # 1/1/1: disputed
    out = tmp_path / "curated.jsonl"
    res = cli("export", "--db", str(db), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("wrote 1 curated records (0 edited) to " + str(out) +
                                       "; not exported: 3 items still pending, 1 disputed")
    out.unlink()
    res = cli("export", "--db", str(db), "--out", str(out), "--require-complete")
    assert res.returncode == 2 and not out.exists()
    assert res.stderr.strip() == ("error: the review is not finished: 3 items still pending, 1 disputed; nothing "
                                  "written (without --require-complete the export writes the resolved items only)")


def test_a_losing_votes_reason_never_reaches_the_exported_record(tmp_path):
    """ana rejects with a reason, bob approves, cat chooses bob's side: the record is exported with
    bob's reason only; ana's "wrong label" stays on her vote in the log."""
    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(1), reviews=2)
    item = store.list_items()[0]
    store.decide(item.id, "ana", "reject", reason="wrong label", note="looks like injected markup")
    store.decide(item.id, "bob", "approve", reason="reads fine")
    store.decide(item.id, "cat", "approve", view=store.get(item.id).view)
    [record] = read_records(export_curated(store, tmp_path / "c.jsonl")["out"])
    assert record.review.status == "approved" and record.review.reason == "reads fine"
    assert record.review.reviewer == "ana,bob,cat"
    first = store.decision_log()[0]
    assert (first["reason"], first["note"]) == ("wrong label", "looks like injected markup")


def test_dpo_pairs_load_with_datasets_in_trl_format(tmp_path, reviewed):
    from datasets import load_dataset
    from trl.data_utils import is_conversational

    out = tmp_path / "dpo.jsonl"
    res = cli("export", "--db", str(tmp_path / "review.db"), "--out", str(out), "--format", "dpo")
    assert res.returncode == 0, res.stderr
    # the fixture's edits set label 'neutral' and a new text: a relabel (classification pair), except
    # on the item that was neutral already (a text edit: generation pair)
    assert "wrote 3 preference pairs" in res.stdout
    assert "1 generation" in res.stdout and "2 classification" in res.stdout
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected", "kind"] and len(ds) == 3
    edited = {i.text: i for i in reviewed.list_items(status="edited")}
    for row in ds:
        assert is_conversational(row)
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
        if row["kind"] == "generation":
            chosen = json.loads(row["chosen"][0]["content"])
            item = edited[chosen["text"]]
            assert row["prompt"][1]["content"] == item.record.provenance["prompt"]
            assert chosen["label"] == item.record.labels["label"] == "neutral"
            assert json.loads(row["rejected"][0]["content"])["text"] == item.record.text
        else:
            text = next(t for t in edited if t in row["prompt"][1]["content"])  # the reviewer's text
            assert row["chosen"][0]["content"] == "neutral"  # the corrected label: fin_sentiment answers it bare
            assert row["rejected"][0]["content"] == edited[text].record.labels["label"] != "neutral"


def test_dpo_export_text_edit_and_relabel_tokenize_and_train_with_trl(tmp_path):
    """A text edit (label kept) gives a generation pair: the prompt that asked for that label, the
    edited sample over the original. A relabel gives a classification pair: the task's prompt with
    the text, the corrected label over the claimed one. Both go through TRL's own DPO preprocessing
    (DPOTrainer tokenizes them with the tiny model's chat template) and one training step."""
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    from backends.models import load_model
    from core.tasks import load_task

    store = ReviewStore(tmp_path / "review.db")
    store.enqueue(make_records(3))
    text_edit, relabel, approve = store.list_items()
    store.decide(text_edit.id, "ana", "edit", text="Nordvik Shipping's quarterly sales rose 9%.", reason="wording")
    store.decide(relabel.id, "ana", "edit", label="positive", reason="it is good news")
    store.decide(approve.id, "ana", "approve")
    out = tmp_path / "dpo.jsonl"
    res = cli("export", "--db", str(tmp_path / "review.db"), "--out", str(out), "--format", "dpo")
    assert res.returncode == 0, res.stderr
    assert "wrote 2 preference pairs" in res.stdout
    assert "1 generation" in res.stdout and "1 classification" in res.stdout
    ds = load_dataset("json", data_files=str(out), split="train")
    gen, cls = (next(r for r in ds if r["kind"] == k) for k in ("generation", "classification"))

    claimed = text_edit.record.labels["label"]
    assert gen["prompt"][1]["content"] == text_edit.record.provenance["prompt"]  # asked for `claimed`
    assert f"Write one {claimed} " in gen["prompt"][1]["content"]
    assert json.loads(gen["chosen"][0]["content"]) == {"text": "Nordvik Shipping's quarterly sales rose 9%.",
                                                      "label": claimed}
    assert json.loads(gen["rejected"][0]["content"]) == {"text": text_edit.record.text, "label": claimed}

    task = load_task("fin_sentiment")
    assert cls["prompt"] == task.classify_messages(relabel.record.text, relabel.record.lang)
    assert relabel.record.labels["label"] == "negative"
    assert (cls["chosen"][0]["content"], cls["rejected"][0]["content"]) == ("positive", "negative")

    model, tokenizer = load_model("tiny", device="cpu")
    trainer = DPOTrainer(model=model, train_dataset=ds, processing_class=tokenizer,
                         args=DPOConfig(output_dir=str(tmp_path / "dpo"), report_to=[], per_device_train_batch_size=2,
                                        max_steps=1, use_cpu=True, save_strategy="no", seed=0))
    processed = trainer.train_dataset
    assert len(processed) == 2
    for row in processed:
        chosen = tokenizer.decode(row["chosen_ids"])
        rejected = tokenizer.decode(row["rejected_ids"])
        assert row["prompt_ids"] and chosen != rejected
        if row["kind"] == "generation":
            assert "rose 9%" in chosen and "rose 9%" not in rejected
        else:
            assert chosen.startswith("positive") and rejected.startswith("negative")
    assert trainer.train().training_loss > 0


def mh_expected(store: ReviewStore) -> int:
    return sum(d["action"] != "reject" for d in store.counted_decisions())
