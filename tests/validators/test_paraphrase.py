"""`paraphrase_duplicates` on the bundled MiniLM: what MinHash passes, it catches; distinct sentences pass.

The sentences are our own (cosines measured with the bundled encoder: the planted paraphrase 0.99 to its seed,
word-bigram Jaccard 0.57; the two Nokia sentences 0.45 apart; the Stora Enso pair 0.94, Jaccard 0.2).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.validators.helpers import make
from validators.base import Context, build
from validators.chain import Chain, run_chain
from validators.cosine import CosineIndex, best_earlier

SEED = "Nokia's quarterly profit rose 20% as handset sales beat forecasts."
PARAPHRASE = "As handset sales beat forecasts, Nokia's quarterly profit rose by 20 percent."
SAME_COMPANY = "Nokia will cut 1,200 jobs in Finland to reduce costs."
CLOSURE = "Stora Enso will close its Kemijarvi pulp mill, cutting 270 jobs."
CLOSURE_AGAIN = "The Kemijarvi pulp mill of Stora Enso is to be closed, with 270 jobs cut."


def test_blocked_search_equals_brute_force_ties_to_the_lowest_row():
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(37, 8)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    keys[20] = keys[3]  # a tie: row 3 wins
    queries = np.concatenate([keys[[3, 30]], rng.normal(size=(5, 8)).astype(np.float32)])
    index = CosineIndex()
    index.add(keys[:10])
    index.add(keys[10:])  # grown in two parts
    sims, rows = index.best(queries, query_block=2, key_block=4)
    full = queries @ keys.T
    assert np.allclose(sims, full.max(1)) and list(rows) == list(full.argmax(1)) and rows[0] == 3
    sims, rows = best_earlier(keys, query_block=3, key_block=5)
    assert rows[0] == -1 and sims[0] == -np.inf
    for i in range(1, len(keys)):
        assert rows[i] == int((keys[i] @ keys[:i].T).argmax()) and np.isclose(sims[i], (keys[i] @ keys[:i].T).max())
    assert rows[20] == 3 and np.isclose(sims[20], 1.0)
    empty = CosineIndex().best(queries)
    assert (empty[1] == -1).all()


def test_a_paraphrase_minhash_passes_is_rejected_and_two_sentences_about_one_company_are_kept(fin):
    seed = make(SEED, rid="seed_1")
    seed.split = "train"
    records = [make(PARAPHRASE, rid="para"), make(SAME_COMPANY, "negative", rid="other")]
    accepted, rejected, report = run_chain(fin, records, references=[seed], only=["near_duplicates",
                                                                                  "paraphrase_duplicates"],
                                           progress=False)
    para = next(r for r in rejected if r.id == "para")
    assert para.verdict("near_duplicates").passed  # character MinHash does not see it
    verdict = para.verdict("paraphrase_duplicates")
    assert not verdict.passed and verdict.details["rule"] == "seed_paraphrase" and verdict.score > 0.95
    assert verdict.details["match"]["id"] == "seed_1" and "paraphrase of seed/train item seed_1" in verdict.reason
    assert [r.id for r in accepted] == ["other"]  # the same company, another event: kept
    assert accepted[0].verdict("paraphrase_duplicates").score < 0.6
    usage = report["usage"]["paraphrase_duplicates"]
    assert usage["texts"] == 3 and usage["calls"] == 2 and usage["cost_usd"] == 0.0  # the seed once, the batch once

    # An eval item is contamination; in a batch the first is kept; a Vietnamese sample passes, saying why.
    eval_item = make(SEED, rid="eval_1")
    eval_item.split = "eval"
    vi = make("Giảng viên dạy rất nhiệt tình và dễ hiểu.", lang="vi", rid="vi_1")
    accepted, rejected, _ = run_chain(fin, [make(PARAPHRASE, rid="p"), make(CLOSURE, rid="c1"),
                                            make(CLOSURE_AGAIN, rid="c2"), vi],
                                      references=[eval_item], only=["paraphrase_duplicates"], progress=False)
    reasons = {r.id: r.verdict("paraphrase_duplicates").details["rule"] for r in rejected}
    assert reasons == {"p": "contamination", "c2": "batch_paraphrase"}
    assert {r.id for r in accepted} == {"c1", "vi_1"}
    assert next(r for r in accepted if r.id == "vi_1").verdict("paraphrase_duplicates").details["skipped"]


def test_samples_accepted_in_an_earlier_round_are_compared_with_once_embedded(fin):
    chain = Chain(fin, [], only=["paraphrase_duplicates"])
    first, _, _ = chain.run([make(CLOSURE, rid="c1")], progress=False)
    accepted, rejected, _ = chain.run([make(CLOSURE_AGAIN, rid="c2"), make(SAME_COMPANY, rid="n")], earlier=first,
                                      progress=False)
    assert [r.id for r in accepted] == ["n"]
    verdict = rejected[0].verdict("paraphrase_duplicates")
    assert verdict.details["rule"] == "earlier_paraphrase" and "accepted in an earlier round" in verdict.reason
    assert chain.usage["paraphrase_duplicates"]["texts"] == 3  # c1 was not embedded again as an earlier sample


def test_options_are_checked_against_the_task_file(fin):
    from core.errors import UserError

    with pytest.raises(UserError, match=r"validators\[paraphrase_duplicates\]\.cutoff: unknown option"):
        build("paraphrase_duplicates", fin, {"cutoff": 0.9}, Context())
