"""A resumable generation run: plans → backend → `samples.jsonl` (appended per batch) + `manifest.json`.

    result = run_generation(RunConfig(task="fin_sentiment", lang="en", n=500, model="tiny",
                                      seeds=Path("runs/fin/data/train.jsonl"), out=Path("runs/fin/synthetic")))
    run = Run(cfg); run.generate(indices, planner, labels); run.save("running")   # the rounds' building block

Every sample, parsed or not, is appended (flushed and fsynced per batch) with its plan index in
`provenance.index`. A re-run of the same config reads the file back, regenerates exactly the missing
indices (plans are pure functions of config, seed and index) and so ends with exactly `n` samples
even after SIGKILL. A different config in the same folder is refused; a larger `n` extends the run.
The manifest's `run_id` names the run across resumes (the shared near-duplicate index keeps its keys
under it), and its `usage` is the run's table of calls, tokens, seconds and dollars per stage
(`backends.metering`), every session's added. On Ray, a worker whose restarts are spent stops the run:
manifest `status: stopped` with the reason, the finished batches kept, one error line; Ctrl-C writes
`status: interrupted` with everything counted so far; the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import platform
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends import BACKENDS, Backend, get_backend
from backends.metering import merge_tables, new_stage, record, snapshot, with_totals
from backends.ray_pool import RayBackendPool, WorkerLost, default_workers, init
from backends.ray_workers import use_key_file
from core.errors import fail
from core.io import JsonlAppender, read_jsonl, read_records, write_json_atomic, write_jsonl_atomic
from core.records import Record, now
from core.tasks import load_task
from generator.diversity import diversity_report
from generator.prompts import Plan, PlanConfig, Planner
from generator.samples import plan_batches, summarise, to_record
from generator.seeds import file_digest, load_seeds

SAMPLES, MANIFEST, SPEND_LEDGER = "samples.jsonl", "manifest.json", "spend.jsonl"
# In process, one backend call takes up to this many consecutive batches of the same sampling: the local
# backend refills a finished row's slot from the call's queue (continuous batching), so its slots stay full
# while each batch's longest rows finish (1.1-1.2x on smollm2-135m, docs/benchmarks.md#real-weights).
# Samples are still appended batch by batch.
CALL_BATCHES = 4
_VERSIONED = ("seedloop", "torch", "transformers", "outlines", "openai", "pydantic")


@dataclass
class RunConfig:
    task: str
    lang: str
    n: int
    seeds: Path
    out: Path
    model: str = "tiny"
    backend: str = "transformers"
    plan: PlanConfig = field(default_factory=PlanConfig)
    batch_size: int = 16
    constrained: bool = True
    max_cost_usd: float | None = None
    price_per_1k: tuple[float, float] | None = None
    device: str | None = None
    ray: str | None = None  # a Ray address ('local' for a local cluster): see backends/ray_pool.py
    ray_workers: int | None = None  # default: the cluster's CPUs (GPUs for vllm)
    api_key_file: Path | None = None  # openai backend: read the key here (on every Ray node), not from the env
    accepted: int | None = None  # generate in rounds until this many samples pass the validators (acceptance.py)
    max_candidates: int | None = None  # with `accepted`: the most candidates to spend (default: a multiple of it)
    on_exhausted: str = "return_partial"  # with `accepted`: return_partial (exit 0) or fail (exit non-zero)

    def identity(self, seeds_digest: str) -> dict[str, Any]:
        """What makes two runs the same run (not `n`, `accepted`, `out`, batch size, device or Ray: those may
        change). A run to N accepted samples plans its rounds differently from `--n`: that mode is part of it."""
        mode = {"mode": "accepted"} if self.accepted is not None else {}
        return {
            "task": self.task, "lang": self.lang, "backend": self.backend, "model": self.model,
            "seeds_sha256": seeds_digest, "constrained": self.constrained,
            **{f"plan.{k}": list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.plan).items()},
            **mode,
        }


def make_config(*, task: str, lang: str, n: int, seeds: str | Path, out: str | Path, model: str = "tiny",
                backend: str = "transformers", **options: Any) -> RunConfig:
    """A `RunConfig` from flat keyword options: `RunConfig` fields or `PlanConfig` fields (see `generate`)."""
    plan_fields = set(PlanConfig.__dataclass_fields__)
    plan_opts = {k: v for k, v in options.items() if k in plan_fields and v is not None}
    run_opts = {k: v for k, v in options.items() if k not in plan_fields}
    unknown = set(run_opts) - set(RunConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown generate() options: {', '.join(sorted(unknown))}")
    if plan_opts.get("max_new_tokens") is None:
        plan_opts["max_new_tokens"] = load_task(task).max_new_tokens(with_input=True)
    return RunConfig(task=task, lang=lang, n=n, seeds=Path(seeds), out=Path(out), model=model, backend=backend,
                     plan=PlanConfig(**plan_opts), **run_opts)


@dataclass
class RunResult:
    out: Path
    records: list[Record]
    manifest: dict[str, Any]
    backend: Backend | None = None  # the loaded model, when this call generated anything
    run: Run | None = field(default=None, repr=False)  # the session: its usage table and manifest
    acceptance: Any = None  # generator.acceptance.Outcome of a run to N accepted samples

    @property
    def parsed(self) -> list[Record]:
        return [r for r in self.records if not r.provenance.get("error")]


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in _VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


def _check_folder(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The previous manifest of this run, or None for a fresh folder; refuses another run's folder."""
    manifest_path, samples_path = out / MANIFEST, out / SAMPLES
    if not manifest_path.is_file():
        if samples_path.is_file() and samples_path.stat().st_size > 0:
            fail(f"{samples_path}: samples without a {MANIFEST}; not a generate.py run folder, use another --out")
        return None
    previous = json.loads(manifest_path.read_text(encoding="utf-8"))
    old = previous.get("config", {})
    for key in sorted(set(old) | set(identity)):
        if old.get(key) != identity.get(key):
            fail(f"{out}: holds a run with a different config ({key}: {old.get(key)!r} there, "
                 f"{identity.get(key)!r} now); use another --out folder or repeat the original command")
    return previous


def _backend_options(cfg: RunConfig, spent: float) -> dict[str, Any]:
    options: dict[str, Any] = {"model": cfg.model}
    if cfg.backend == "transformers":
        options.update(batch_size=cfg.batch_size, device=cfg.device)
    elif cfg.backend == "openai":
        # The ledger records every request's spend as it happens (fsynced), so the cap is the run's
        # total across kills and resumes. A folder from before the ledger starts it with its manifest's spend.
        ledger = cfg.out / SPEND_LEDGER
        if spent > 0 and not ledger.exists():
            write_jsonl_atomic(ledger, [{"settle": "before-ledger", "usd": spent}])
        options.update(max_cost_usd=cfg.max_cost_usd, price_per_1k=cfg.price_per_1k, ledger=ledger)
    return options


def _spent(model: Any, before: float) -> float:
    """The run's spend: the backend's ledger total where it keeps one, else before + this session."""
    if hasattr(model, "total_spent_usd"):
        return float(model.total_spent_usd)
    return before + float(getattr(model, "cost_usd", 0.0))


def _load_backend(cfg: RunConfig, spent: float, run_id: str) -> Backend:
    """The backend in this process, or a pool of them on a Ray cluster when `cfg.ray` is set."""
    key_file = cfg.api_key_file if cfg.backend == "openai" else None
    if cfg.ray is None:
        use_key_file(key_file)
        return get_backend(cfg.backend, **_backend_options(cfg, spent))

    ray = init(cfg.ray)
    return RayBackendPool(cfg.backend, _backend_options(cfg, spent), cfg.ray_workers or default_workers(ray, cfg.backend),
                          run_id=run_id, key_file=key_file)


class Run:
    """One session of a run folder: the config checked against the folder, the samples read back, the
    backend loaded when something is left to generate, and the manifest written after every batch.

    `generate(indices)` writes the missing ones of `indices`; `save(status)` writes the manifest with the
    counts, the usage table (this session's rows added to the folder's earlier ones) and the time.
    Others add to `manifest` (the rounds' acceptance) and `stages` (the validators' usage) before saving.
    """

    def __init__(self, cfg: RunConfig, *, backend: Backend | None = None, progress: bool = True):
        if cfg.backend not in BACKENDS:
            fail(f"unknown backend '{cfg.backend}' (available: {', '.join(BACKENDS)})")
        self.cfg, self.progress, self.model = cfg, progress, backend
        self.task = load_task(cfg.task)
        self.planner = Planner(self.task, cfg.lang, load_seeds(cfg.seeds, self.task, cfg.lang), cfg.plan)
        identity = cfg.identity(file_digest(cfg.seeds))
        cfg.out.mkdir(parents=True, exist_ok=True)
        previous = _check_folder(cfg.out, identity) or {}
        self.spent = float(previous.get("cost_usd", 0.0))
        self.elapsed_before = float(previous.get("time", {}).get("elapsed_s", 0.0))
        self.started = previous.get("time", {}).get("started") or now().isoformat()
        self.usage_before: dict[str, dict[str, Any]] = (previous.get("usage") or {}).get("stages", {})
        self.stages: dict[str, dict[str, Any]] = {}  # this session's usage rows
        self.schema = self.task.generation_schema()
        self.appender = JsonlAppender(cfg.out / SAMPLES)  # repairs a partial last line left by a kill
        self.records = read_records(cfg.out / SAMPLES, allow_empty=True) if (cfg.out / SAMPLES).stat().st_size else []
        # Not derived from the seed: two runs of one config (two folders, two people) must not share it.
        self.run_id = previous.get("run_id") or uuid.uuid4().hex
        self.manifest: dict[str, Any] = {"config": identity, "run_id": self.run_id, "n": cfg.n,
                                         "versions": _versions(), "status": "running"}
        for key in ("acceptance", "target"):  # what the rounds recorded (they update it as they go)
            if key in previous:
                self.manifest[key] = previous[key]
        self.session_start = time.perf_counter()
        self._own_backend = backend is None

    @property
    def done(self) -> set[int]:
        return {r.provenance.get("index") for r in self.records}

    def stage(self, name: str) -> dict[str, Any]:
        """This session's usage row of a stage (created empty)."""
        return self.stages.setdefault(name, new_stage())

    def usage(self) -> dict[str, Any]:
        """The usage table of the whole run: the folder's earlier sessions plus this one."""
        return with_totals(merge_tables(self.usage_before, self.stages))

    def save(self, status: str, reason: str = "") -> None:
        if hasattr(self.model, "restarts"):  # a Ray pool: how many of its workers came back (batches retried)
            self.manifest["ray"] = {"workers": len(self.model.actors), "restarts": self.model.restarts}
        self.manifest.update(status=status, stop_reason=reason, counts=summarise(self.records, self.task),
                             cost_usd=round(_spent(self.model, self.spent), 6), usage=self.usage(),
                             time={"started": self.started, "updated": now().isoformat(),
                                   "elapsed_s": round(self.elapsed_before + time.perf_counter() - self.session_start, 2)})
        write_json_atomic(self.cfg.out / MANIFEST, self.manifest)

    def backend(self) -> Backend:
        """The model, loaded on first use (a local one, or a Ray pool)."""
        if self.model is None:
            self.model = _load_backend(self.cfg, self.spent, self.run_id)
        if getattr(self.model, "run_id", "") is None:
            self.model.run_id = self.run_id  # a pool the caller made serves this run (its shared index keys)
        return self.model

    def generate(self, indices: list[int], planner: Planner | None = None,
                 labels: dict[int, str] | None = None) -> str:
        """Generate the missing ones of `indices` (with `planner`, and `labels[prompt_index]` as their target
        labels where given); returns a stop reason, or "" when all are written. A worker whose restarts are
        spent stops the run: manifest `status: stopped`, one error line; Ctrl-C saves `status: interrupted`."""
        missing = [i for i in indices if i not in self.done]
        if not missing:
            return ""
        try:
            return _generate_missing(self, planner or self.planner, missing, labels or {})
        except WorkerLost as exc:
            self.close()
            self.save("stopped", str(exc))
            fail(f"generate: {exc}; {len(self.records)} samples are in {self.cfg.out / SAMPLES}: "
                 "re-run the same command to resume")
        except KeyboardInterrupt:
            self.save("interrupted", "interrupted (Ctrl-C)")
            raise

    def close(self) -> None:
        """The appender, and a Ray pool this session made (the caller's backend stays open)."""
        self.appender.close()
        if self._own_backend and self.cfg.ray is not None and self.model is not None:
            self.model.close()
            self.model = None

    def result(self) -> RunResult:
        self.records.sort(key=lambda r: r.provenance.get("index", 0))
        return RunResult(self.cfg.out, self.records, self.manifest, self.model, run=self)


def run_generation(cfg: RunConfig, *, backend: Backend | None = None, progress: bool = True) -> RunResult:
    """Generate (or finish generating) `cfg.n` samples into `cfg.out`; see the module docstring."""
    if cfg.n <= 0:
        fail(f"--n must be a positive number of samples (got {cfg.n})")
    run = Run(cfg, backend=backend, progress=progress)
    run.save("running")
    reason = run.generate(list(range(cfg.n)))
    run.appender.close()
    result = run.result()
    run.manifest["diversity"] = diversity_report(result.records)
    run.save("stopped" if reason else "complete", reason)
    return result


def _generate_missing(run: Run, planner: Planner, missing: list[int], labels: dict[int, str]) -> str:
    """Generate the missing indices batch by batch; returns a stop reason, or "" when all are done."""
    from tqdm import tqdm

    cfg, task, schema = run.cfg, run.task, run.schema
    model = run.backend()
    stage = run.stage("generation")
    bar = tqdm(total=len(missing), unit="sample", disable=not run.progress, desc=f"generate {cfg.task}/{cfg.lang}",
               dynamic_ncols=True)
    tokens, start = 0, time.perf_counter()
    plans = [planner.plan(i, labels.get(i // cfg.plan.samples_per_prompt)) for i in missing]
    batches = plan_batches(plans, cfg.batch_size)
    # One backend call takes one Sampling (the batch shares temperature and top-p) and one seed per
    # sample: sample i's draw depends on (run seed, i) only, never on its batch or on the worker.
    if hasattr(model, "map_batches"):  # a Ray pool: batches run on the workers, results come back in order
        calls = (([p.messages for p in b], b[0].sampling, [p.sampling.seed for p in b]) for b in batches)
        results = model.map_batches(cfg.task, cfg.constrained, calls)
    else:
        results = _in_process(model, batches, schema if cfg.constrained else None)
    try:
        before, spent_before, batch_start = snapshot(model), _spent(model, run.spent), time.perf_counter()
        for batch, completions in zip(batches, results, strict=False):
            rows, made = [], []
            for plan, completion in zip(batch, completions, strict=True):
                if completion.extra.get("spend_cap"):
                    continue  # not generated: a resume with a higher cap does it
                rows.append(to_record(task, cfg.lang, plan, planner, completion, model, plan.sampling.as_dict(), schema))
                made.append(completion)
                tokens += completion.completion_tokens
            run.appender.write_batch(rows)
            run.records.extend(rows)
            record(stage, model, before, rows=len(rows), failures=sum(1 for r in rows if r.provenance.get("error")),
                   seconds=time.perf_counter() - batch_start,
                   tokens=(sum(c.prompt_tokens for c in made), sum(c.completion_tokens for c in made)),
                   cost=_spent(model, run.spent) - spent_before if cfg.backend == "openai" else None)
            before, spent_before, batch_start = snapshot(model), _spent(model, run.spent), time.perf_counter()
            bar.update(len(rows))
            parsed = sum(1 for r in run.records if not r.provenance.get("error"))
            bar.set_postfix(parsed=f"{parsed / max(len(run.records), 1):.0%}",
                            tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):.0f}")
            if len(rows) < len(batch):
                run.save("stopped", "spend cap reached (--max-cost-usd)")
                return "spend cap reached (--max-cost-usd)"
            run.save("running")
    finally:
        bar.close()
    return ""


def _in_process(model: Backend, batches: list[list[Plan]], schema: Any) -> Any:
    """Each batch's completions, from backend calls of up to `CALL_BATCHES` consecutive batches that share
    temperature and top-p (one call takes one Sampling)."""
    start = 0
    while start < len(batches):
        key = (batches[start][0].sampling.temperature, batches[start][0].sampling.top_p)
        end = start + 1
        while (end < len(batches) and end - start < CALL_BATCHES
               and (batches[end][0].sampling.temperature, batches[end][0].sampling.top_p) == key):
            end += 1
        plans = [p for batch in batches[start:end] for p in batch]
        done = model.generate([p.messages for p in plans], schema, plans[0].sampling,
                              seeds=[p.sampling.seed for p in plans])
        for batch in batches[start:end]:
            yield done[: len(batch)]
            done = done[len(batch) :]
        start = end


def read_samples(out: Path) -> list[dict[str, Any]]:
    """The raw rows of a run folder (for reports and tests)."""
    return read_jsonl(out / SAMPLES, allow_empty=True)
