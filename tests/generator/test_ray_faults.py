"""Faults on a real local Ray cluster of 2 CPUs: a generation worker SIGKILLed mid-run is restarted and its
batches retried (the run ends with exactly the undisturbed run's samples.jsonl), a worker that keeps dying
stops the run with one line and a resumable folder, and the OpenAI key never reaches Ray's job records,
actor records or session logs (against the FAKE metering proxy, tests/fakes/metering_proxy.py).

    pytest -m chaos tests/generator/test_ray_faults.py     # or `make chaos` for every fault test
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from core.errors import UserError
from loop.generate import generate
from tests.cli_helpers import PY, REPO, child_env
from tests.generator.test_ray import cluster  # noqa: F401  (the 2-CPU local cluster)

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
psutil = pytest.importorskip("psutil")

COMMON = dict(task="fin_sentiment", lang="en", model="tiny", seed=5, batch_size=2, validate=False, review=False,
              progress=False)


def _worker_pids() -> set[int]:
    """The GenerationWorker actor processes of this test process's own cluster (its descendants only:
    other people's clusters on a shared machine are never touched)."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            title = (proc.cmdline() or [""])[0]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if title.startswith("ray::GenerationWorker"):
            found.add(proc.pid)
    return found


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


class Killer(threading.Thread):
    """SIGKILLs generation workers once `samples` holds `after` lines: one (`times=1`), or every worker
    process as soon as it appears, `times` deaths in all (a worker that keeps dying)."""

    def __init__(self, samples: Path, after: int, times: int = 1, timeout_s: float = 300):
        super().__init__(daemon=True)
        self.samples, self.after, self.times, self.timeout_s = samples, after, times, timeout_s
        self.killed: list[int] = []
        self.lines_at_kill: list[int] = []
        self.replaced_by: set[int] = set()  # worker processes seen after the first kill: the restarts
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.time() + self.timeout_s
        while not self.stop.is_set() and time.time() < deadline:
            alive = _worker_pids() - set(self.killed)
            if self.killed:
                self.replaced_by |= alive
            if len(self.killed) < self.times and alive and _lines(self.samples) >= self.after:
                pid = min(alive)
                self.lines_at_kill.append(_lines(self.samples))
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
            time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(400)
def test_a_worker_sigkilled_mid_run_is_restarted_and_the_samples_equal_an_undisturbed_run(cluster, seeds_file,  # noqa: F811
                                                                                         tmp_path):
    """fault: SIGKILL of one of 2 generation workers mid-run; checked: samples.jsonl byte-equal to an undisturbed run."""
    n = 12
    generate(out=tmp_path / "undisturbed", n=n, seeds=seeds_file, **COMMON)
    out = tmp_path / "killed"
    killer = Killer(out / "samples.jsonl", after=2)
    killer.start()
    try:
        result = generate(out=out, n=n, seeds=seeds_file, ray="local", ray_workers=2, **COMMON)
    finally:
        killer.stop.set()
        killer.join()
    assert len(killer.killed) == 1 and killer.lines_at_kill[0] < n, "the worker was not killed mid-run"
    assert killer.replaced_by, "Ray did not start a new worker process"
    manifest = result.manifest
    assert manifest["status"] == "complete" and manifest["ray"]["restarts"] >= 1  # a retried batch came back
    # Exactly the samples of the undisturbed run: same rows, same order, same bytes.
    assert (out / "samples.jsonl").read_bytes() == (tmp_path / "undisturbed" / "samples.jsonl").read_bytes()


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(400)
def test_a_worker_that_keeps_dying_stops_the_run_with_one_line_and_a_resumable_folder(cluster, seeds_file,  # noqa: F811
                                                                                       tmp_path):
    """fault: a worker SIGKILLed again after its restart (max_restarts=1); checked: run stops with one line,
    manifest stopped with the reason, the same command then resumes to the undisturbed samples."""
    from backends.ray_pool import RayBackendPool
    from generator.runner import make_config, run_generation

    n = 12
    out = tmp_path / "dying"
    cfg = make_config(out=out, n=n, seeds=seeds_file, ray="local", ray_workers=1,
                      **{k: v for k, v in COMMON.items() if k not in ("validate", "review", "progress")})
    pool = RayBackendPool("transformers", {"model": "tiny", "batch_size": 2, "device": None}, 1, max_restarts=1)
    killer = Killer(out / "samples.jsonl", after=2, times=2)
    killer.start()
    try:
        with pytest.raises(UserError) as stopped:
            run_generation(cfg, backend=pool, progress=False)
    finally:
        killer.stop.set()
        killer.join()
        pool.close()
    message = str(stopped.value)
    assert len(killer.killed) == 2
    assert "\n" not in message and "restarts are spent (max_restarts=1" in message, message
    assert "re-run the same command to resume" in message
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and "restarts are spent" in manifest["stop_reason"]
    kept = _lines(out / "samples.jsonl")
    assert 2 <= kept < n and manifest["counts"]["samples"] == kept
    # The same command resumes (no kill this time) and ends with the undisturbed run's samples.
    generate(out=out, n=n, seeds=seeds_file, ray="local", ray_workers=2, **COMMON)
    generate(out=tmp_path / "undisturbed", n=n, seeds=seeds_file, **COMMON)
    rows = sorted((json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()),
                  key=lambda r: r["provenance"]["index"])
    reference = [json.loads(line) for line in (tmp_path / "undisturbed" / "samples.jsonl").read_text().splitlines()]
    assert rows == sorted(reference, key=lambda r: r["provenance"]["index"])


def _recording_proxy():
    """The FAKE metering proxy, also recording each request's Authorization header (the key the worker sent)."""
    from tests.fakes.metering_proxy import MeteringProxy

    class RecordingProxy(MeteringProxy):
        def __init__(self, *args, **kwargs):
            self.auth: list[str] = []
            super().__init__(*args, **kwargs)

        def _handler(self):
            base, proxy = super()._handler(), self

            class Handler(base):
                def do_POST(self) -> None:
                    proxy.auth.append(self.headers.get("Authorization", ""))
                    super().do_POST()

            return Handler

    return RecordingProxy("nologprobs")


def _files_holding(folder: Path, secret: bytes) -> list[str]:
    """Every regular file under `folder` (logs, configs, spilled objects) whose bytes contain `secret`."""
    hits = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
                hits.append(str(path))
        except OSError:
            continue  # sockets, files removed while reading
    return hits


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_a_key_file_is_read_on_the_workers_and_no_key_enters_job_records_or_logs(cluster, seeds_file, tmp_path,  # noqa: F811
                                                                                 monkeypatch):
    """fault: an API key handed to a 2-worker openai run (--openai-key-file); checked: every request carried it,
    and the runtime_env, Ray's job and actor records and its session logs hold no copy."""
    from ray._private import state, worker

    secret = "sk-chaos-" + os.urandom(12).hex()
    key_file = tmp_path / "openai.key"
    key_file.write_text(secret + "\n")
    key_file.chmod(0o600)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with _recording_proxy() as proxy:
        monkeypatch.setenv("OPENAI_BASE_URL", proxy.base_url)
        result = generate(out=tmp_path / "api", n=4, seeds=seeds_file, backend="openai", price_per_1k=(1.0, 1.0),
                          max_new_tokens=50, ray="local", ray_workers=2, api_key_file=str(key_file),
                          **{**COMMON, "model": "metered"})
    assert result.manifest["status"] == "complete" and result.manifest["counts"]["parsed"] == 4
    assert proxy.auth and set(proxy.auth) == {f"Bearer {secret}"}  # the workers really used the key
    assert "OPENAI_API_KEY" not in os.environ  # the driver never put it into its own environment
    runtime_env = ray.get_runtime_context().runtime_env
    assert "OPENAI_API_KEY" not in runtime_env.get("env_vars", {}) and secret not in json.dumps(runtime_env)
    accessor = state.state._connect_and_get_accessor()  # the GCS tables the cluster keeps and shows
    jobs = b"".join(accessor.get_job_table(skip_submission_job_info_field=False, skip_is_running_tasks_field=False))
    actors = b"".join(accessor.get_actor_table(None, None))
    assert str(REPO).encode() in jobs  # the job's runtime_env is in there (PYTHONPATH): the search is real
    assert secret.encode() not in jobs and secret.encode() not in actors
    session = Path(worker._global_node.get_session_dir_path())
    assert (session / "logs").is_dir()
    assert _files_holding(session, secret.encode()) == []
    assert _files_holding(tmp_path / "api", secret.encode()) == []  # nor the run folder (manifest, ledger)


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(400)
def test_a_key_in_the_environment_reaches_the_workers_but_not_ray_logs(seeds_file, tmp_path):
    """fault: OPENAI_API_KEY exported for `generate.py --ray` (its own local cluster); checked: the workers sent
    it, and no file of that cluster's Ray session (logs, runtime_env agent) nor the run folder holds it."""
    secret = "sk-chaos-" + os.urandom(12).hex()
    ray_tmp = Path(tempfile.mkdtemp(prefix="r27", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    out = tmp_path / "api"
    args = [PY, "generate.py", "--task", "fin_sentiment", "--lang", "en", "--backend", "openai", "--model", "metered",
            "--price-per-1k", "1,1", "--n", "4", "--seeds", str(seeds_file), "--out", str(out), "--quiet",
            "--max-new-tokens", "50", "--batch-size", "2", "--no-validate", "--ray", "--ray-workers", "2"]
    try:
        with _recording_proxy() as proxy:
            done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300,
                                  env=child_env(OPENAI_BASE_URL=proxy.base_url, OPENAI_API_KEY=secret,
                                                RAY_TMPDIR=str(ray_tmp)))
        assert done.returncode == 0, done.stderr[-3000:]
        assert secret not in done.stdout + done.stderr
        assert proxy.auth and set(proxy.auth) == {f"Bearer {secret}"}
        sessions = list(ray_tmp.rglob("session_*"))
        assert sessions and list(ray_tmp.rglob("logs/*.log")), "the run's Ray session logs were not found"
        assert _files_holding(ray_tmp, secret.encode()) == []
        assert _files_holding(out, secret.encode()) == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.timeout(300)
def test_a_missing_key_file_on_a_worker_is_one_line_naming_the_file_and_host(cluster, seeds_file, tmp_path,  # noqa: F811
                                                                            monkeypatch):
    missing = tmp_path / "nowhere" / "openai.key"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never asked: the workers stop first
    with pytest.raises(UserError) as stopped:
        generate(out=tmp_path / "api", n=2, seeds=seeds_file, backend="openai", ray="local", ray_workers=1,
                 api_key_file=str(missing), **{**COMMON, "model": "metered"})
    message = str(stopped.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert "a Ray worker could not start" in message and f"{missing}: cannot read the API key file on" in message
    assert json.loads((tmp_path / "api" / "manifest.json").read_text())["status"] == "stopped"
