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
    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(8), reviews=2)
    for _ in range(8):
        item = store.claim("ana")
        store.decide(item.id, "ana", "approve", version=item.version)
        item = store.claim("bob")
        if item.id % 4:
            store.decide(item.id, "bob", "approve", version=item.version)
        else:
            store.decide(item.id, "bob", "reject", reason="wrong label")
    while (item := store.claim("cat")) is not None:  # the two split items get a third decision
        store.decide(item.id, "cat", "reject", reason="wrong label")
    s = summary(store)
    ia = s["inter_annotator"]
    assert (ia["items"], ia["raters"]) == (8, 3)
    # pairs of decisions on the same item: 6 items x 1 agreeing pair + 2 items x (ana-bob no, ana-cat no, bob-cat yes)
    assert ia["raw_agreement"] == round(8 / 12, 3)
    ratings = {}
    for d in store.counted_decisions():
        ratings.setdefault(d["item_id"], {})[d["annotator"]] = "reject" if d["action"] == "reject" else d["label_after"]
    assert ia["alpha"] == round(krippendorff_alpha(ratings), 3)
    pairs = {(p["a"], p["b"]): p for p in ia["pairs"]}
    ab = [(r["ana"], r["bob"]) for r in ratings.values()]
    assert pairs["ana", "bob"]["items"] == 8
    assert pairs["ana", "bob"]["kappa"] == round(cohen_kappa_score(*zip(*ab, strict=True)), 3)
    assert ("ana", "cat") in pairs and pairs["ana", "cat"]["items"] == 2
    assert {r["annotator"] for r in s["throughput"]} == {"ana", "bob", "cat"}
    by_template = {r["template_id"]: r for r in s["acceptance_by_template"]}
    assert set(by_template) == {"direct", "fewshot"}
    mh = s["model_vs_human"]
    assert mh["items"] == mh_expected(store) and 0 <= mh["agreement"] <= 1
    stats = json.loads(cli("stats", "--db", str(tmp_path / "r.db")).stdout)
    assert stats["inter_annotator"] == ia


def test_dpo_pairs_load_with_datasets_in_trl_format(tmp_path, reviewed):
    from datasets import load_dataset
    from trl.data_utils import is_conversational

    out = tmp_path / "dpo.jsonl"
    res = cli("export", "--db", str(tmp_path / "review.db"), "--out", str(out), "--format", "dpo")
    assert res.returncode == 0, res.stderr
    assert "wrote 3 preference pairs" in res.stdout
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) == 3
    edited = {i.text: i for i in reviewed.list_items(status="edited")}
    for row in ds:
        assert is_conversational(row)
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["prompt"][1]["content"].startswith("Write one ")
        chosen = json.loads(row["chosen"][0]["content"])
        rejected = json.loads(row["rejected"][0]["content"])
        item = edited[chosen["text"]]  # chosen: the reviewer's edit; rejected: the model's sample
        assert chosen == {"text": item.text, "label": "neutral"}
        assert rejected == {"text": item.record.text, "label": item.record.labels["label"]}
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"


def mh_expected(store: ReviewStore) -> int:
    return sum(d["action"] != "reject" for d in store.counted_decisions())
