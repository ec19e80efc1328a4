"""Loaders: labels through the task's synonyms and codes, provenance kept, bad input named by file and line."""

from __future__ import annotations

import json

import pytest

from core.errors import UserError
from core.tasks import load_task
from data.sources import (
    TableSpec,
    check_unmapped,
    discover,
    load_hub,
    load_phrasebank,
    load_table,
    load_twitter_csv,
    load_uit_vsfc,
)


@pytest.fixture(scope="module")
def task():
    return load_task("fin_sentiment")


def test_samples_map_synonyms_and_keep_provenance(samples_dir, task):
    sources = {s.lang: s for s in discover([str(samples_dir)], task)}
    assert {lang: len(s.records) for lang, s in sources.items()} == {"en": 60, "vi": 60}
    by_id = {r.meta["source_id"]: r for r in sources["en"].records}
    expected = {"en_007": "positive", "en_014": "positive", "en_023": "negative", "en_042": "negative",
                "en_017": "positive", "en_026": "positive", "en_035": "negative", "en_044": "neutral"}
    assert {i: by_id[i].labels["label"] for i in expected} == expected
    rec = by_id["en_007"]
    assert rec.provenance["dataset"] == "samples" and rec.provenance["row"] == 6
    assert rec.provenance["raw_label"] == "bullish" and rec.source == "real"


def test_release_formats(tmp_path, task):
    fpb = tmp_path / "Sentences_50Agree.txt"
    fpb.write_bytes("Profit rose in Helsinki , said Seppälä .@positive\nSales fell .@negative\n".encode("latin-1"))
    src = load_phrasebank(fpb, task)
    assert [r.labels["label"] for r in src.records] == ["positive", "negative"]
    assert "Seppälä" in src.records[0].text  # latin-1 decoded, not mangled

    tw = tmp_path / "sent_train.csv"
    tw.write_text('text,label\n"$ACME cut, at bank",0\nShares jump,1\nFlat day,2\n', encoding="utf-8")
    assert [r.labels["label"] for r in load_twitter_csv(tw, task).records] == ["negative", "positive", "neutral"]

    uit = tmp_path / "uit"
    uit.mkdir()
    (uit / "sents.txt").write_text("thầy dạy hay .\nphòng học nóng .\n", encoding="utf-8")
    (uit / "sentiments.txt").write_text("2\n0\n")
    (uit / "topics.txt").write_text("0\n2\n")
    recs = load_uit_vsfc(uit, task, "eval").records
    assert [(r.labels["label"], r.meta["topic"]) for r in recs] == [("positive", "lecturer"), ("negative", "facility")]
    assert recs[1].provenance["pool"] == "eval"


def test_unknown_label_code_is_named_by_file_and_line(tmp_path, task):
    tw = tmp_path / "sent_train.csv"
    tw.write_text("text,label\nShares jump,1\nWeird row,7\n", encoding="utf-8")
    src = load_twitter_csv(tw, task)
    assert len(src.records) == 1 and src.unmapped == [(f"{tw}:3", "7")]
    with pytest.raises(UserError, match=r"sent_train.csv:3: label '7' maps to no fin_sentiment label"):
        check_unmapped([src], task, allow=False)
    assert check_unmapped([src], task, allow=True) == {"twitter_financial_news_sentiment:en": {"7": 1}}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.csv", b"headline,label\nx,1\n", r"missing.csv:1: missing column 'text'"),
    ("empty.csv", b"", r"empty.csv: empty file"),
    ("bad.csv", b"text,label\nok row,positive\n\xff\xfe broken,positive\n", r"bad.csv:3: not valid utf-8"),
    ("rows.jsonl", b'{"text": "fine row here", "label": "positive"}\n{"text": "no label"}\n',
     r"rows.jsonl:2: missing field 'label'"),
])
def test_bad_user_files(tmp_path, task, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_table(path, task, TableSpec(lang="en"))


def test_user_tables_with_column_mapping(tmp_path, task):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"headline": "Profit up strongly", "sentiment": "bullish", "language": "en"},
            {"headline": "Lợi nhuận giảm mạnh", "sentiment": "tiêu cực", "language": "vi"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mine.parquet")
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    spec = TableSpec(text_col="headline", label_col="sentiment", lang_col="language")
    for name in ("mine.parquet", "mine.jsonl"):
        got = {s.lang: [r.labels["label"] for r in s.records] for s in load_table(tmp_path / name, task, spec)}
        assert got == {"en": ["positive"], "vi": ["negative"]}
    with pytest.raises(UserError, match="--lang"):
        load_table(tmp_path / "mine.jsonl", task, TableSpec(text_col="headline", label_col="sentiment"))


def test_hub_unreachable_is_a_clear_error(task, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot load 'FinGPT/fingpt-sentiment-train'"):
        load_hub(task)


def test_real_release_files(shared_datasets, task):
    sources = {s.key: s for s in discover([str(shared_datasets)], task)}
    counts = {k: len(s.records) for k, s in sources.items()}
    assert counts == {"financial_phrasebank:en": 4846, "twitter_financial_news_sentiment:en": 9543,
                      "uit_vsfc:vi": 11426, "uit_vsfc:vi:eval": 1583}
    assert not any(s.unmapped for s in sources.values())
    topics = {r.meta["topic"] for r in sources["uit_vsfc:vi"].records}
    assert topics == {"lecturer", "training_program", "facility", "others"}
    agreement = {r.meta["agreement"] for r in sources["financial_phrasebank:en"].records}
    assert agreement == {"50Agree", "66Agree", "75Agree", "AllAgree"}
