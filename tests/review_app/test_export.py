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
from review_app.metrics import cohen_kappa, summary
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
    assert "records: 9 (3 edited" in card and "| direct |" in card and "Cohen's kappa" in card
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


def test_kappa_matches_sklearn_and_dashboard_numbers(tmp_path):
    a = ["pos", "neg", "neu", "pos", "reject", "neg", "pos"]
    b = ["pos", "neg", "pos", "pos", "reject", "neu", "pos"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa([], []) is None

    store = ReviewStore(tmp_path / "r.db")
    store.enqueue(make_records(8), reviews=2)
    for _ in range(8):
        item = store.claim("ana")
        store.decide(item.id, "ana", "approve")
        item = store.claim("bob")
        if item.id % 4:
            store.decide(item.id, "bob", "approve")
        else:
            store.decide(item.id, "bob", "reject", reason="wrong label")
    s = summary(store)
    assert s["inter_annotator"]["items"] == 8 and s["inter_annotator"]["raw_agreement"] == 0.75
    assert s["inter_annotator"]["kappa"] is not None
    assert {r["annotator"] for r in s["throughput"]} == {"ana", "bob"}
    by_template = {r["template_id"]: r for r in s["acceptance_by_template"]}
    assert set(by_template) == {"direct", "fewshot"}
    mh = s["model_vs_human"]
    assert mh["items"] == mh_expected(store) and 0 <= mh["agreement"] <= 1
    stats = json.loads(cli("stats", "--db", str(tmp_path / "r.db")).stdout)
    assert stats["inter_annotator"] == s["inter_annotator"]


def mh_expected(store: ReviewStore) -> int:
    return sum(d["action"] != "reject" for d in store.counted_decisions())
