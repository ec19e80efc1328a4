"""Near-duplicates: planted exact and near copies, contamination against eval, seed copies, Vietnamese."""

from __future__ import annotations

import numpy as np
import pytest

from tests.validators.helpers import make
from validators.base import Context, build
from validators.minhash import (
    LshIndex,
    Shingler,
    band_layout,
    band_ranges,
    clusters,
    naive_signature,
    signatures,
)


def _check(fin, records, references=(), **options):
    return build("near_duplicates", fin, options, Context(references=list(references))).check(records)


def test_batched_signatures_equal_datasketch_update(sample_records):
    shingler = Shingler()
    sets = [shingler(r.text, r.lang) for r in sample_records] + [[]]
    ours = signatures(sets, chunk_rows=37)  # small chunks: documents straddle chunk borders
    naive = np.array([naive_signature(s) for s in sets])
    assert ours.dtype == naive.dtype and np.array_equal(ours, naive)


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.7, 128), (0.5, 64), (0.85, 256)])
def test_cached_band_layout_is_the_one_datasketch_computes(threshold, num_perm):
    """The index skips datasketch's parameter search (most of a small check's time) for the same bands."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert band_layout(threshold, num_perm) == (lsh.b, lsh.r)
    assert band_ranges(threshold, num_perm) == lsh.hashranges
    index = LshIndex(threshold, num_perm)
    assert (index.lsh.b, index.lsh.r) == (lsh.b, lsh.r)


def test_planted_duplicates_in_samples_found_and_distinct_texts_pass(fin, sample_records):
    verdicts = {r.id: v for r, v in zip(sample_records, _check(fin, sample_records), strict=True)}
    failed = {rid: v for rid, v in verdicts.items() if not v.passed}
    # PLANTED.md: exact copies en_021, en_031 (same text as en_009), vi_021, vi_033; near copies en_027, vi_025.
    assert set(failed) == {"en_021", "en_027", "en_031", "vi_021", "vi_025", "vi_033"}
    assert failed["en_021"].reason.startswith("exact duplicate of en_008")
    assert failed["en_027"].reason.startswith("near duplicate of en_012")
    assert failed["vi_025"].details["matches"][0]["id"] == "vi_009"
    # the first of each cluster is kept, and knows what it was kept over
    assert verdicts["en_012"].passed and verdicts["en_012"].details["kept_over"] == ["en_027"]


def test_contamination_against_eval_item_is_rejected(fin):
    eval_item = make("Pre-tax profit rose to EUR 27.4 mn from EUR 19.9 mn, driven by strong demand in Asia.",
                     rid="eval_7", split="eval")
    seed = make("Kestrel Energy wins a USD 120 million contract to supply turbines to a wind farm.", rid="seed_1",
                split="train")
    batch = [
        make("Pre-tax profit increased to EUR 27.4 mn from EUR 18.9 mn, driven by strong demand in Asia."),
        make("Kestrel Energy wins a USD 150 million contract to supply turbines to a wind farm."),
        make("Copper miners rallied after the central bank surprised markets with a rate cut."),
    ]
    contaminated, seed_copy, fresh = _check(fin, batch, [eval_item, seed])
    assert not contaminated.passed and contaminated.details["rule"] == "contamination"
    assert contaminated.reason.startswith("contamination: near eval item eval_7 (jaccard≈0.")
    assert not seed_copy.passed and "seed/train item seed_1" in seed_copy.reason
    assert fresh.passed and fresh.score < 0.3


def test_vietnamese_copy_without_diacritics_is_a_duplicate(fin):
    batch = [make("Hòa Phát báo lãi sau thuế 2.800 tỷ đồng trong quý II, gấp đôi cùng kỳ.", lang="vi"),
             make("Hoa Phat bao lai sau thue 2.900 ty dong trong quy II, gap doi cung ky.", lang="vi"),
             make("Giá cà phê robusta trong nước lập đỉnh mới, người trồng ở Tây Nguyên phấn khởi.", lang="vi")]
    kept, copy, other = _check(fin, batch)
    assert kept.passed and other.passed
    assert not copy.passed and copy.details["max_jaccard"] >= 0.9


def test_threshold_option_controls_near_matches(fin):
    a = make("Pre-tax profit rose to EUR 27.4 mn from EUR 19.9 mn, driven by strong demand in Asia.")
    b = make("Pre-tax profit increased to EUR 27.4 mn from EUR 18.9 mn, driven by strong demand in Asia.")
    assert not _check(fin, [a, b], threshold=0.7)[1].passed
    assert _check(fin, [a, b], threshold=0.95)[1].passed


def test_clusters_group_near_copies_and_leave_distinct_texts_alone():
    shingler = Shingler()
    texts = ["shares of the bank rose five percent on friday after results",
             "shares of the bank rose five percent on friday after strong results",
             "oil prices fell sharply as inventories built up in the united states"]
    sigs = signatures([shingler(t, "en") for t in texts])
    assert clusters(texts, sigs, 0.5) == [[0, 1]]


@pytest.fixture()
def redis_url(tmp_path):
    """A real redis-server on a free loopback port, stopped after the test; skipped without the binary."""
    import shutil
    import socket
    import subprocess
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_lsh_index_in_redis_gives_the_same_verdicts(fin, sample_records, redis_url):
    import redis

    in_memory = _check(fin, sample_records)
    in_redis = build("near_duplicates", fin, {}, Context(redis_url=redis_url)).check(sample_records)
    assert [v.model_dump() for v in in_redis] == [v.model_dump() for v in in_memory]
    assert redis.Redis.from_url(redis_url).dbsize() > 0  # the index really lived in Redis


def test_band_clusters_match_the_datasketch_index(sample_records):
    from validators.minhash import band_clusters

    shingler = Shingler()
    texts = [r.text for r in sample_records]
    sigs = signatures([shingler(r.text, r.lang) for r in sample_records])
    found = clusters(texts, sigs, 0.7)
    assert found == band_clusters(sigs, 0.7) and len(found) == 6  # the six planted pairs of PLANTED.md


NEAR_TEXTS = [
    "Apple shares rose 5% after strong iPhone sales in the third quarter",
    "Apple shares rose 6% after strong iPhone sales in the third quarter!",
    "Oil prices fell sharply as OPEC raised its output targets for next year",
    "Tesla recalls 2,000 vehicles over a faulty seat belt sensor",
    "",
]


def _brute_pairs(sets, threshold):
    from validators.minhash import jaccard

    return {(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))
            if sets[i] and sets[j] and jaccard(sets[i], sets[j]) >= threshold}


@pytest.mark.parametrize("verify", ["exact", "estimate"])
def test_one_index_serves_both_stages_settings(verify):
    from validators.minhash import CHAR_5GRAMS, NearDuplicateIndex, estimated_jaccard, jaccard

    for shingler in (Shingler(), Shingler(CHAR_5GRAMS)):
        index = NearDuplicateIndex(NEAR_TEXTS, threshold=0.5, shingler=shingler, verify=verify)
        pairs = index.pairs()
        assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
        (_, _, sim), = pairs
        expected = (jaccard(index.sets[0], index.sets[1]) if verify == "exact"
                    else estimated_jaccard(index.sigs[0], index.sigs[1]))
        assert sim == expected
        assert {(i, j) for i, j, _ in pairs} <= _brute_pairs(index.sets, 0.5)
        assert [j for j, _ in index.query(NEAR_TEXTS[0].upper())] == [0, 1]
        assert index.query("") == [] and index.similarities(4) == {}


def test_data_stage_settings_are_character_5grams_with_exact_jaccard():
    from data.dedup import DEFAULT_THRESHOLD, NearDuplicateIndex
    from validators.minhash import jaccard

    index = NearDuplicateIndex(NEAR_TEXTS)
    assert index.threshold == DEFAULT_THRESHOLD == 0.6 and index.verify == "exact"
    assert index.sets[3][:2] == [b"tesla", b"esla "]  # normalised text, spaces kept
    (i, j, sim), = index.pairs()
    assert (i, j) == (0, 1) and sim == jaccard(index.sets[0], index.sets[1])


def test_data_stage_index_in_redis_gives_the_same_pairs(redis_url, sample_records):
    from validators.minhash import CHAR_5GRAMS, NearDuplicateIndex

    texts = [r.text for r in sample_records]
    settings = {"threshold": 0.6, "shingler": Shingler(CHAR_5GRAMS), "verify": "exact"}
    in_memory = NearDuplicateIndex(texts, **settings).pairs()
    assert in_memory  # the samples hold planted near copies
    assert NearDuplicateIndex(texts, redis_url=redis_url, **settings).pairs() == in_memory
