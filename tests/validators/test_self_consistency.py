"""Self-consistency mechanics with a named fake backend, and once end to end with the tiny model."""

from __future__ import annotations

import pytest

from backends import Backend
from tests.validators.fake_backend import FakeScoringBackend
from tests.validators.helpers import make
from validators.base import Context, build
from validators.chain import run_chain

SURE = "Nordvik Shipping's net sales rose 9.2% year on year."
TORN = "The company will publish its half-year report on 14 August 2024."
WRONG = "Operating profit fell to EUR 3.1 mn from EUR 5.8 mn a year earlier."


def test_fake_backend_is_a_backend_and_records_its_calls():
    fake = FakeScoringBackend(probs={SURE: {"positive": 1.0}})
    assert isinstance(fake, Backend) and fake.name == "fake"
    rows = fake.score([[{"role": "user", "content": f"Classify.\n\nText: {SURE}"}]], ["positive", "negative"])
    assert rows[0][0] == 0.0 and rows[0][1] < -20 and len(fake.score_calls) == 1


def _validator(fin, backend, **options):
    return build("self_consistency", fin, options, Context(backend=backend, seed=0))


def test_score_mode_votes_majority_and_agreement(fin):
    fake = FakeScoringBackend(probs={SURE: {"positive": 1.0}, TORN: {"neutral": 0.5, "positive": 0.5},
                                     WRONG: {"positive": 1.0}})
    records = [make(SURE, "positive"), make(TORN, "neutral"), make(WRONG, "negative")]
    sure, torn, wrong = _validator(fin, fake, k=8, min_agreement=0.6).check(records)
    assert len(fake.score_calls) == 1 and len(fake.score_calls[0]) == 3  # one batched call, one prompt each
    assert sure.passed and sure.details == {
        "votes": {"positive": 8}, "majority": "positive", "agreement": 1.0, "k": 8, "claimed": "positive",
        "method": "score", "probs": {"positive": 1.0, "negative": 0.0, "neutral": 0.0}}
    assert sum(torn.details["votes"].values()) == 8 and set(torn.details["votes"]) <= {"neutral", "positive"}
    assert torn.details["agreement"] == torn.details["votes"].get("neutral", 0) / 8
    assert not wrong.passed and wrong.details["majority"] == "positive" and wrong.details["rule"] == "majority_disagrees"
    assert wrong.reason == "self-consistency: model says 'positive' (8/8), claimed 'negative'"


def _seeds(per_label: int = 10) -> list:
    texts = {"positive": "Profit rose {} percent at Nordvik", "negative": "Losses widened {} percent at Nordvik",
             "neutral": "Nordvik holds its meeting on day {}"}
    return [make(t.format(i), label).model_copy(update={"split": "train"})
            for label, t in texts.items() for i in range(per_label)]


def test_a_model_no_better_than_its_bias_on_the_seeds_abstains(fin):
    """A model that calls everything positive keeps a true label as often as a wrong one (a positive seed's
    true label, a negative seed's wrong 'positive'): its votes are no evidence, so it abstains instead of
    rejecting by its bias."""
    seeds = _seeds()
    biased = FakeScoringBackend(probs={s.text: {"positive": 0.9, "negative": 0.05, "neutral": 0.05} for s in seeds}
                                | {WRONG: {"positive": 1.0}})
    validator = build("self_consistency", fin, {"k": 3, "competence_n": 30},
                      Context(references=seeds, backend=biased, seed=0))
    verdict = validator.check([make(WRONG, "negative")])[0]
    assert verdict.passed and verdict.details["abstained"] and verdict.score is None
    competence = verdict.details["competence"]
    assert competence["seeds"] == 30 and not competence["competent"]
    # True labels kept: the positive seeds (a third); wrong labels kept: 'positive' claimed for the other
    # two thirds, one of their two wrong labels each (a third): separation about 0.
    assert competence["keeps_true"] == pytest.approx(1 / 3, abs=0.1)
    assert competence["separation"] == pytest.approx(0.0, abs=0.15)
    assert "abstained" in verdict.reason and validator.doubt(verdict) == 0.0
    # A model that gets the seeds right votes as before, and rejects the mislabelled record.
    sound = FakeScoringBackend(probs={s.text: {s.labels["label"]: 1.0} for s in seeds} | {WRONG: {"positive": 1.0}})
    voted = build("self_consistency", fin, {"k": 3, "competence_n": 30},
                  Context(references=seeds, backend=sound, seed=0)).check([make(WRONG, "negative")])[0]
    assert not voted.passed and "abstained" not in voted.details and voted.details["majority"] == "positive"
    # Eval items are never used to judge competence; without seeds the model votes.
    eval_only = [s.model_copy(update={"split": "eval"}) for s in seeds]
    unjudged = build("self_consistency", fin, {"k": 3}, Context(references=eval_only, backend=biased, seed=0))
    assert "abstained" not in unjudged.check([make(WRONG, "negative")])[0].details


def test_score_mode_is_seeded_per_record(fin):
    fake = FakeScoringBackend(probs={TORN: {"neutral": 0.5, "positive": 0.5}})
    one = _validator(fin, fake, k=20).check([make(TORN, "neutral")])[0]
    again = _validator(fin, fake, k=20).check([make(SURE, "positive"), make(TORN, "neutral")])[1]
    assert one.details["votes"] == again.details["votes"]  # batch composition does not change the draw
    assert 0 < one.details["votes"]["neutral"] < 20


def test_generate_mode_makes_k_rounds_and_applies_the_threshold(fin):
    fake = FakeScoringBackend(answers={SURE: ["positive"], TORN: ["neutral", "positive", "neutral", "?"],
                                       WRONG: ["positive", "negative", "positive"]})
    records = [make(SURE, "positive"), make(TORN, "neutral"), make(WRONG, "negative")]
    sure, torn, wrong = _validator(fin, fake, k=4, method="generate", temperature=0.8, min_agreement=0.75).check(records)
    assert len(fake.generate_calls) == 4  # k label-only generations per record, one batched call per round
    assert [s.seed for _, s in fake.generate_calls] == [0, 1, 2, 3]
    assert all(s.temperature == 0.8 for _, s in fake.generate_calls)
    assert sure.passed and sure.details["votes"] == {"positive": 4}
    assert torn.details["votes"] == {"neutral": 2, "positive": 1, "(unparsed)": 1}
    assert not torn.passed and torn.details["rule"] == "low_agreement" and torn.details["agreement"] == 0.5
    assert not wrong.passed and wrong.details["majority"] == "positive"


def test_chain_skips_self_consistency_without_backend_and_runs_it_with_one(fin):
    records = [make(SURE, "positive"), make(WRONG, "negative")]
    _, _, report = run_chain(fin, records, progress=False)
    assert "skipped" in report["validators"]["self_consistency"]
    fake = FakeScoringBackend(probs={SURE: {"positive": 0.9, "neutral": 0.1}, WRONG: {"positive": 1.0}})
    accepted, rejected, _ = run_chain(fin, records, backend=fake, progress=False)
    assert [r.text for r in rejected] == [WRONG]
    sc = accepted[0].verdict("self_consistency")
    assert sc.details["k"] == 3  # from tasks/fin_sentiment.yaml
    assert 1 - sc.details["agreement"] <= accepted[0].meta["doubt"] < 1.0  # low agreement raises doubt
    assert rejected[0].meta["doubt"] == 1.0


def test_end_to_end_with_the_tiny_model(fin):
    from backends import get_backend

    backend = get_backend("transformers", model="tiny", device="cpu")
    records = [make(SURE, "positive"), make(WRONG, "negative", lang="en"), make("Lợi nhuận quý ba tăng 12%.", lang="vi")]
    verdicts = _validator(fin, backend, k=5).check(records)
    for v in verdicts:
        assert v.details["k"] == 5 and sum(v.details["votes"].values()) == 5
        assert set(v.details["votes"]) <= set(fin.label_names) and v.details["majority"] in fin.label_names
        assert sum(v.details["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert v.passed == (v.details["majority"] == v.details["claimed"] and v.details["agreement"] >= 0.6)
    assert verdicts == _validator(fin, backend, k=5).check(records)  # seeded: the same votes again
