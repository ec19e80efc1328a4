"""Faults of the shared near-duplicate index (validators/shared_index.py) on a real local Ray cluster of 2 CPUs
and a real redis-server: two concurrent runs of one input on one Redis, Redis killed between the two phases,
Redis restarted empty between them, and `generate.py --ray --redis-url` losing Redis mid-validation.

    pytest -m chaos tests/generator/test_ray_index_faults.py     # or `make chaos` for every fault test
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import pytest

from core.errors import UserError
from tests.generator.test_ray import cluster  # noqa: F401  (the 2-CPU local cluster)
from tests.generator.test_ray_validation import _check, _planted
from tests.validators.helpers import make
from tests.validators.redis_server import RedisServer

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
redis = pytest.importorskip("redis")


@pytest.fixture()
def server(tmp_path):
    """A redis-server the test may kill and start again on the same loopback port."""
    made = RedisServer(tmp_path)
    if made.binary is None:
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    made.start()
    yield made
    made.stop()


@contextlib.contextmanager
def _pool(workers: int, run_id: str):
    from backends.ray_pool import ValidationPool

    made = ValidationPool(workers, run_id=run_id)
    try:
        yield made
    finally:
        made.close()


class BetweenPhases:
    """A real pool whose first `map_shards` (phase 1, the adds) is followed by `then()`: a fault, a wait.
    Everything else (run_id, actors, generate, score, close) is the wrapped pool's."""

    def __init__(self, pool: Any, then: Any):
        self._inner, self._then, self._calls = pool, then, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def map_shards(self, fn, items):
        out = self._inner.map_shards(fn, items)
        self._calls += 1
        if self._calls == 1:
            self._then()
        return out


def _rejected(verdicts) -> int:
    return sum(not v.passed for v in verdicts)


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_two_concurrent_runs_of_one_input_on_one_redis_both_reject_the_planted_duplicates(cluster, server):  # noqa: F811
    """fault: two runs of one input on one Redis, the first finishing (and cleaning up) while the second sits
    between its phases; checked: both give the in-process verdicts, neither deletes the other's index."""
    batch, references, _ = _planted()
    local = _check(batch, references)
    assert _rejected(local) >= 18  # the planted pairs, the chain, the copies, the contamination
    client = redis.Redis.from_url(server.url)
    b_waits, a_done, seen = threading.Event(), threading.Event(), {}

    def b_pauses():
        b_waits.set()
        assert a_done.wait(timeout=240)
        seen["b_keys_after_a"] = len(list(client.scan_iter(match="seedloop:nd:run-b:*")))

    with _pool(1, "run-a") as pool_a, _pool(1, "run-b") as pool_b:
        results: dict[str, Any] = {}
        second = threading.Thread(target=lambda: results.update(
            b=_check(batch, references, redis_url=server.url, workers=BetweenPhases(pool_b, b_pauses))))
        second.start()
        assert b_waits.wait(timeout=240)  # run B's index is in Redis; run A now runs from start to end
        results["a"] = _check(batch, references, redis_url=server.url, workers=pool_a)
        a_done.set()
        second.join(timeout=240)
    assert seen["b_keys_after_a"] > 0  # A's cleanup left B's index alone
    for name in ("a", "b"):
        assert [v.model_dump() for v in results[name]] == [v.model_dump() for v in local], name
    assert client.dbsize() == 0  # each run deleted its own keys, and only those


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_two_checks_under_one_run_id_never_pass_duplicates_silently(cluster, server):  # noqa: F811
    """fault: one index namespace shared and deleted under a check that sits between its phases (what one
    input, one namespace did); checked: the second check stops with one line instead of finding no duplicates."""
    batch, references, _ = _planted()

    with _pool(1, "same-run") as first, _pool(1, "same-run") as second:
        def other_run_finishes():
            _check(batch, references, redis_url=server.url, workers=first)  # adds, queries, deletes the keys

        with pytest.raises(UserError) as stopped:
            _check(batch, references, redis_url=server.url, workers=BetweenPhases(second, other_run_finishes))
    message = str(stopped.value)
    assert "\n" not in message and "failed in phase 2 (query)" in message and "signatures" in message, message


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_redis_killed_between_the_phases_stops_with_one_line_then_a_rerun_completes(cluster, server):  # noqa: F811
    """fault: redis-server SIGKILLed after phase 1 (add); checked: one-line error, no verdicts, and after a
    restart the same run's re-run gives the in-process verdicts and leaves Redis empty."""
    batch, references, _ = _planted()
    with _pool(2, "run-killed") as pool:
        with pytest.raises(UserError) as stopped:
            _check(batch, references, redis_url=server.url, workers=BetweenPhases(pool, server.kill))
        message = str(stopped.value)
        assert "\n" not in message and "Traceback" not in message, message
        assert message.startswith("near_duplicates: the shared index in Redis (redis://127.0.0.1:")
        assert "failed in phase 2 (query)" in message and "no verdict was given" in message
        server.start()  # back, empty: the re-run adds everything again
        rerun = _check(batch, references, redis_url=server.url, workers=pool)
    assert [v.model_dump() for v in rerun] == [v.model_dump() for v in _check(batch, references)]
    assert redis.Redis.from_url(server.url).dbsize() == 0


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_redis_restarted_empty_between_the_phases_is_an_error_not_no_duplicates(cluster, server):  # noqa: F811
    """fault: redis-server restarted (empty, as without persistence) between the phases; checked: the check
    stops with one line naming the lost signatures instead of reading an empty index as "no duplicates"."""
    batch, references, _ = _planted()

    def restart():
        server.kill()
        server.start()

    with _pool(2, "run-restarted") as pool, pytest.raises(UserError) as stopped:
        _check(batch, references, redis_url=server.url, workers=BetweenPhases(pool, restart))
    message = str(stopped.value)
    assert "\n" not in message and "holds 0 of the" in message and "signatures phase 1 added" in message, message


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(500)
def test_generate_losing_redis_mid_validation_keeps_the_samples_and_the_same_command_validates_them(
        cluster, server, seeds_file, tmp_path):  # noqa: F811
    """fault: redis-server SIGKILLed between the phases of `generate --ray --redis-url`'s validation; checked:
    one line, samples.jsonl untouched, no verdict files; the re-run (its manifest's run id) validates as one
    process does."""
    from generator.runner import make_config, run_generation
    from loop.generate import generate, post_process

    common = dict(task="fin_sentiment", lang="en", n=8, seeds=seeds_file, model="tiny", seed=5, batch_size=2,
                  temperature=0.0)
    local = generate(out=tmp_path / "local", validate=False, review=False, progress=False, **common)
    refs = tmp_path / "refs.jsonl"  # near two samples (a seed copy and a contamination): the index has work
    texts = [r.text for r in local.parsed]
    refs.write_text("".join(make(t + " Reuters", rid=f"ref_{i}", split=split).model_dump_json() + "\n"
                            for i, (t, split) in enumerate([(texts[1], "train"), (texts[-1], "eval")])))
    generate(out=tmp_path / "local", references=[refs], review=False, progress=False, **common)

    out = tmp_path / "ray"
    cfg = make_config(out=out, ray="local", ray_workers=2, **common)
    result = run_generation(cfg, progress=False)
    run_id = result.manifest["run_id"]
    samples = (out / "samples.jsonl").read_bytes()
    client = redis.Redis.from_url(server.url)
    seen = {}

    def kill():
        seen["keys"] = len(list(client.scan_iter(match=f"seedloop:nd:{run_id}:*")))  # under the manifest's run id
        server.kill()

    pool = result.backend
    result.backend = BetweenPhases(pool, kill)
    try:
        with pytest.raises(UserError) as stopped:
            post_process(result, cfg, validate=True, review=False, references=[refs], redis_url=server.url)
    finally:
        pool.close()
    message = str(stopped.value)
    assert seen["keys"] > 0
    assert "\n" not in message and message.startswith("validation stopped: near_duplicates:"), message
    assert f"the samples stay in {out / 'samples.jsonl'}: re-run the same command to validate them" in message
    assert (out / "samples.jsonl").read_bytes() == samples
    assert not (out / "accepted.jsonl").exists() and not (out / "validation.json").exists()

    server.start()
    generate(out=out, references=[refs], review=False, progress=False, ray="local", ray_workers=2,
             redis_url=server.url, **common)  # the same command: nothing to generate, validation on the cluster
    assert json.loads((out / "manifest.json").read_text())["run_id"] == run_id
    assert (out / "samples.jsonl").read_bytes() == samples

    def verdicts(folder):
        rows = [json.loads(line) for name in ("accepted.jsonl", "rejected.jsonl")
                for line in (folder / name).read_text().splitlines()]
        return {r["provenance"]["index"]: (r["id"], r["verdicts"]) for r in rows}

    assert verdicts(out) == verdicts(tmp_path / "local")
    rules = {v["details"].get("rule") for _, vs in verdicts(out).values() for v in vs if v["name"] == "near_duplicates"}
    assert {"seed_copy", "contamination"} <= rules
    assert client.dbsize() == 0
