"""Validation on a real local Ray cluster of 2 CPUs through one real redis-server: the near-duplicate check
split over the workers gives the verdicts of the single-process check (so of each near-duplicate pair spread
over two workers exactly one is accepted, and the same one), a restart re-adds without finding itself, and
`generate.py --ray --backend openai` against the FAKE metering proxy keeps one spend cap for all workers."""

from __future__ import annotations

import contextlib
import json
import random
import string
import subprocess

import pytest

from core.tasks import load_task
from tests.cli_helpers import PY, REPO, child_env
from tests.generator.test_ray import cluster  # noqa: F401  (the 2-CPU local cluster)
from tests.validators.helpers import make
from tests.validators.test_near_duplicates import redis_url  # noqa: F401  (the redis-server fixture)
from validators.base import Context, build

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
redis = pytest.importorskip("redis")


def _body(rng: random.Random, words: int = 18) -> str:
    # Made-up words: digits are folded by the shingler, and real words would make unplanned neighbours.
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(words))


def _planted():
    """A batch whose near-duplicate pairs straddle the two workers' halves, plus references to hit."""
    rng = random.Random(7)
    bodies = [_body(rng) for _ in range(16)]
    firsts = [make(f"Quarter {b} closes higher") for b in bodies]
    seconds = [make(f"Quarter {b} closes higher today") for b in bodies]
    # A chain A ~ B ~ C (estimated Jaccard 0.83, 0.78) where A and C are not near (0.67), in that order: the
    # in-process rule rejects B (A is earlier) and C (B is earlier, though rejected itself); a first-come-wins
    # claim would keep C, or not, depending on timing.
    chain_rng = random.Random(2)
    words = _body(chain_rng, 60).split()
    chain = [make(" ".join(words)), make(" ".join(words[:48])),
             make(" ".join(words[4:48] + _body(chain_rng, 6).split()))]
    batch = [*firsts[:8], *seconds[8:][::-1], chain[0], make("Hi"), make("HI"), *seconds[:8][::-1],
             *firsts[8:], chain[1], chain[2], make(f"Quarter {bodies[0]} closes higher")]
    references = [make(f"Quarter {_body(random.Random(1))} closes higher", rid="seed_1", split="train"),
                  make(f"Quarter {bodies[3]} closes higher today!", rid="eval_1", split="eval")]
    return batch, references, list(zip(firsts, seconds, strict=True))


@contextlib.contextmanager
def _pool(workers: int, run_id: str | None = None):
    """A validation pool of `workers` actors (one CPU each: close it before the next one can start)."""
    from backends.ray_pool import ValidationPool

    made = ValidationPool(workers, run_id=run_id)
    try:
        yield made
    finally:
        made.close()


def _check(records, references, **context):
    task = load_task("fin_sentiment")
    return build("near_duplicates", task, {"threshold": 0.7}, Context(references=references, **context)).check(records)


def test_two_workers_through_one_redis_give_the_single_process_verdicts(cluster, redis_url):  # noqa: F811
    batch, references, pairs = _planted()
    local = _check(batch, references)
    with _pool(2) as pool:
        shared = _check(batch, references, redis_url=redis_url, workers=pool)
    # Every verdict, its reason, score and details (matches, kept_over) as the in-process check gives them.
    assert [v.model_dump() for v in shared] == [v.model_dump() for v in local]
    position = {id(r): i for i, r in enumerate(batch)}
    for first, second in pairs[:3] + pairs[4:]:  # split over the workers' halves: exactly one kept, the earlier
        a, b = local[position[id(first)]], local[position[id(second)]]
        assert a.passed != b.passed
        keep, drop = sorted((first, second), key=lambda r: position[id(r)])
        assert shared[position[id(keep)]].passed and not shared[position[id(drop)]].passed
    assert "duplicate of" in shared[position[id(pairs[5][1])]].reason
    assert not shared[-1].passed and shared[-1].details["exact"]  # an exact copy of the first batch row
    assert shared[16].passed and [v.passed for v in shared[35:37]] == [False, False]  # the chain: A kept only
    assert "duplicate of" in shared[36].reason and shared[36].details["matches"][0]["id"] == batch[35].id
    assert shared[17].passed and not shared[18].passed  # "Hi" has no shingles: exact copies are still caught
    assert {shared[position[id(r)]].details["rule"] for r in pairs[3]} == {"contamination"}  # near eval_1
    # One worker gives the same verdicts: the outcome is a function of the input, not of the sharding.
    with _pool(1) as one:
        assert [v.model_dump() for v in _check(batch, references, redis_url=redis_url, workers=one)] == \
               [v.model_dump() for v in local]
    assert redis.Redis.from_url(redis_url).dbsize() == 0  # each finished check deleted its namespace


def test_a_restarted_check_re_adds_without_finding_itself(cluster, redis_url):  # noqa: F811
    from validators.shared_index import IndexSpec, SharedNearDuplicateIndex, namespace

    batch, references, _ = _planted()
    validator = build("near_duplicates", load_task("fin_sentiment"), {"threshold": 0.7},
                      Context(references=references))
    # What a run killed mid-way through phase 1 leaves: its namespace of this very input, half filled, and
    # (a session before, with fewer samples) a namespace of another input under the same run id.
    groups = {"e": validator.context.eval_refs, "t": validator.context.train_refs, "b": batch}
    rows = [(f"{kind}:{i}", r.text, r.lang) for kind, recs in groups.items() for i, r in enumerate(recs)]
    rules = validator._shingler().rules
    spec = IndexSpec(redis_url, namespace(rows, 0.7, 128, 1, rules, run_id="run-1"), 0.7, 128, 1, rules)
    left = SharedNearDuplicateIndex(spec)
    assert left.add(rows[: len(rows) // 2]) > 0
    older = IndexSpec(redis_url, namespace(rows[:-3], 0.7, 128, 1, rules, run_id="run-1"), 0.7, 128, 1, rules)
    assert SharedNearDuplicateIndex(older).add(rows[:-3]) > 0
    other = IndexSpec(redis_url, namespace(rows, 0.7, 128, 1, rules, run_id="run-2"), 0.7, 128, 1, rules)
    assert SharedNearDuplicateIndex(other).add(rows[:5]) > 0  # another run of the same input, still going
    client = redis.Redis.from_url(redis_url)
    theirs = set(client.scan_iter(match="seedloop:nd:run-2:*"))
    with _pool(2, "run-1") as pool:
        restarted = _check(batch, references, redis_url=redis_url, workers=pool)
    assert [v.model_dump() for v in restarted] == [v.model_dump() for v in _check(batch, references)]
    assert set(client.scan_iter(match="*")) == theirs  # all of run-1's keys gone, run-2's untouched


@pytest.mark.slow
def test_generate_ray_with_redis_validates_on_the_workers_as_one_process_does(cluster, redis_url, seeds_file,  # noqa: F811
                                                                              tmp_path):
    from loop.generate import generate

    common = dict(task="fin_sentiment", lang="en", n=8, seeds=seeds_file, model="tiny", seed=5, batch_size=2,
                  temperature=0.0, review=False, progress=False)
    local = generate(out=tmp_path / "local", validate=False, **common)
    # References near two generated samples (a seed copy and a contamination), so the index has work to do.
    refs = tmp_path / "refs.jsonl"
    texts = [r.text for r in local.parsed]
    refs.write_text("".join(make(t + " Reuters", rid=f"ref_{i}", split=split).model_dump_json() + "\n"
                            for i, (t, split) in enumerate([(texts[1], "train"), (texts[-1], "eval")])))
    generate(out=tmp_path / "local", references=[refs], **common)  # the in-process validation of those samples
    generate(out=tmp_path / "ray", references=[refs], ray="local", ray_workers=2, redis_url=redis_url, **common)

    def verdicts(folder):
        """index -> (id, the near_duplicates verdict, accepted?) over accepted.jsonl and rejected.jsonl."""
        rows = [json.loads(line) for name in ("accepted.jsonl", "rejected.jsonl")
                for line in (folder / name).read_text().splitlines()]
        return {r["provenance"]["index"]: (r["id"], [v for v in r["verdicts"] if v["name"] == "near_duplicates"],
                                           all(v["passed"] for v in r["verdicts"])) for r in rows}

    ours, theirs = verdicts(tmp_path / "ray"), verdicts(tmp_path / "local")
    assert ours == theirs and len(ours) == len(local.parsed)
    rules = {v[0]["details"].get("rule") for _, v, _ in ours.values()}
    assert {"seed_copy", "contamination"} <= rules
    report = json.loads((tmp_path / "ray" / "validation.json").read_text())
    assert report["near_duplicates_on"] == {"ray_workers": 2, "redis": redis_url}
    assert redis.Redis.from_url(redis_url).info("stats")["total_commands_processed"] > 20  # it really went there


@pytest.mark.slow
def test_two_ray_workers_share_one_spend_cap_against_the_metering_proxy(seeds_file, tmp_path):
    """FAKE metering proxy (tests/fakes): the server's bill and the run's ledger stay under --max-cost-usd."""
    from tests.fakes.metering_proxy import MeteringProxy

    out, cap = tmp_path / "capped", 3.0
    args = [PY, "generate.py", "--task", "fin_sentiment", "--lang", "en", "--backend", "openai", "--model", "metered",
            "--price-per-1k", "1,1", "--max-cost-usd", str(cap), "--n", "40", "--seeds", str(seeds_file),
            "--out", str(out), "--quiet", "--max-new-tokens", "50", "--batch-size", "2", "--no-validate",
            "--ray", "--ray-workers", "2"]
    with MeteringProxy("nologprobs", delay_s=0.05) as proxy:
        done = subprocess.run(args, cwd=REPO, env=child_env(OPENAI_BASE_URL=proxy.base_url, OPENAI_API_KEY="sk-x"),
                              capture_output=True, text=True, timeout=300)
        billed, answered = proxy.billed_usd, proxy.answered
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["stop_reason"] == "spend cap reached (--max-cost-usd)"
    assert "status stopped (spend cap reached (--max-cost-usd))" in done.stdout
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    # Rows up to the cap, none lost or doubled.
    assert 0 < len(rows) < 40 and len({r["provenance"]["index"] for r in rows}) == len(rows)
    assert all("error" not in r["provenance"] for r in rows)  # rows past the cap are not written, not crashed
    assert 0 < billed <= cap and manifest["cost_usd"] <= cap
    # The ledger adds up: every reservation settled, the settled total is the server's bill and the manifest's.
    ledger = [json.loads(line) for line in (out / "spend.jsonl").read_text().splitlines()]
    reserved = {r["reserve"]: r["usd"] for r in ledger if "reserve" in r}
    settled = {r["settle"]: r["usd"] for r in ledger if "settle" in r}
    assert set(settled) == set(reserved) and len(settled) == answered >= len(rows)
    assert len({key.split("-")[0] for key in reserved}) == 1  # one keeper numbered every request
    assert sum(settled.values()) == pytest.approx(billed) == pytest.approx(manifest["cost_usd"], abs=1e-6)
    assert all(settled[k] <= reserved[k] + 1e-12 for k in settled)
