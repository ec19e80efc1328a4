"""The bench helpers that decide what a row claims: the corpus, datasketch's documented path, parsing."""

from __future__ import annotations

import numpy as np

from bench.bench_growth import _json_line
from bench.bench_minhash import THRESHOLD, _components, corpus, datasketch_pairs
from bench.bench_review import pct
from core.records import Record
from validators.minhash import Shingler, band_clusters, signatures


def test_corpus_is_seeded_and_holds_near_copies():
    texts = corpus(3000, seed=5)
    assert texts == corpus(3000, seed=5)
    assert texts != corpus(3000, seed=6)
    sigs = signatures([Shingler()(t, "en") for t in texts])
    assert len(band_clusters(sigs, THRESHOLD)) > 50  # about one line in ten is a near copy


def test_datasketch_as_documented_matches_ours_once_its_pairs_are_verified():
    from datasketch import MinHash

    texts = corpus(2000, seed=1)
    sets = [Shingler()(t, "en") for t in texts]
    ours = signatures(sets)
    theirs = MinHash.bulk(sets, num_perm=128, seed=1)
    assert np.array_equal(ours, np.array([m.hashvalues for m in theirs], dtype=ours.dtype))
    pairs = datasketch_pairs(theirs)
    verified = [(i, j) for i, j in pairs if theirs[i].jaccard(theirs[j]) >= THRESHOLD]
    assert _components(len(texts), verified) == band_clusters(ours, THRESHOLD)
    assert sum(map(len, _components(len(texts), pairs))) >= sum(map(len, band_clusters(ours, THRESHOLD)))


def test_json_line_takes_one_line_objects_only():
    assert _json_line('{"peak_mb": 12.5}') == {"peak_mb": 12.5}
    assert _json_line("{") is None and _json_line('{"a": 1') is None and _json_line("done") is None


def test_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert pct(values, 50) == 50.5 and pct(values, 99) > 99 and pct([3.0], 99) == 3.0


def test_data_value_bench_stand_in_is_new_english_text_with_its_seed():
    from bench.bench_data_value import synthetic_stand_in

    real = [Record.new(task="fin_sentiment", lang=lang, text=f"shares of firm {i} rose today", labels={"label": "positive"})
            for i, lang in enumerate(["en", "vi", "en"])]
    out = synthetic_stand_in(real, n=5)
    assert [r.text for r in out] == ["today rose 0 firm of shares", "today rose 2 firm of shares"]
    assert all(r.source == "synthetic" and r.lang == "en" for r in out)
    assert out[0].provenance["seed_texts"] == ["shares of firm 0 rose today"]
