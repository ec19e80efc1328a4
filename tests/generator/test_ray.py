"""`generate.py --ray` on a real local Ray cluster of 2 CPUs: the same samples as one process, resumable
after a SIGKILL of the driver (validation on the cluster: test_ray_validation.py)."""

from __future__ import annotations

import json

import pytest

from loop.generate import generate
from tests.cli_helpers import PY, REPO, child_env
from tests.generator.test_generate import _kill_after_lines

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="session")
def cluster():
    """One local cluster of 2 CPUs for every Ray test of the session (a start costs ~12 s)."""
    from backends.ray_pool import init

    init(None, num_cpus=2)
    yield
    ray.shutdown()


def _rows(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def _run(out, seeds_file, **options):
    return generate(task="fin_sentiment", lang="en", n=8, seeds=seeds_file, out=out, model="tiny", seed=5,
                    batch_size=2, validate=False, review=False, progress=False, **options)


# Not marked slow: `make test` runs the distributed path on a local cluster of 2 CPUs.
def test_same_samples_with_one_two_workers_and_without_ray(cluster, seeds_file, tmp_path):
    _run(tmp_path / "local", seeds_file)
    _run(tmp_path / "ray1", seeds_file, ray="local", ray_workers=1)
    _run(tmp_path / "ray2", seeds_file, ray="local", ray_workers=2)
    local = _rows(tmp_path / "local")
    assert len(local) == 8 and [r["provenance"]["index"] for r in local] == list(range(8))
    for name in ("ray1", "ray2"):
        rows = _rows(tmp_path / name)
        # The same file, row for row: ids, texts, labels and the whole provenance (seeds, sampling, tokens).
        assert [(r["id"], r["text"], r["labels"], r["provenance"]) for r in rows] == \
               [(r["id"], r["text"], r["labels"], r["provenance"]) for r in local], name
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["counts"]["samples"] == 8


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_loses_and_duplicates_nothing(seeds_file, tmp_path):
    import subprocess

    out = tmp_path / "killed"
    args = ["--task", "fin_sentiment", "--lang", "en", "--n", "12", "--model", "tiny", "--seeds", str(seeds_file), "--out", str(out),
            "--seed", "5", "--batch-size", "2", "--no-validate", "--quiet", "--ray", "--ray-workers", "2"]
    _kill_after_lines(args, out / "samples.jsonl", 4)
    assert 4 <= len(_rows(out)) < 12  # killed mid-run, for real
    done = subprocess.run([PY, "generate.py", *args], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _rows(out)
    assert sorted(r["provenance"]["index"] for r in rows) == list(range(12))
    assert len({r["id"] for r in rows}) == len(rows)
    # And the rows are the ones an uninterrupted single-process run writes.
    reference = generate(task="fin_sentiment", lang="en", n=12, seeds=seeds_file, out=tmp_path / "ref", model="tiny",
                         seed=5, batch_size=2, validate=False, review=False, progress=False)
    by_index = {r["provenance"]["index"]: (r["id"], r["text"], r["labels"]) for r in rows}
    assert [by_index[r.provenance["index"]] for r in reference.records] == \
           [(r.id, r.text, r.labels) for r in reference.records]
