"""A resumable generation run: plans → backend → `samples.jsonl` (appended per batch) + `manifest.json`.

    result = run_generation(RunConfig(task="fin_sentiment", lang="en", n=500, model="tiny",
                                      seeds=Path("runs/fin/data/train.jsonl"), out=Path("runs/fin/synthetic")))

Every sample, parsed or not, is appended (flushed and fsynced per batch) with its plan index in
`provenance.index`. A re-run of the same config reads the file back, regenerates exactly the missing
indices (plans are pure functions of config, seed and index) and so ends with exactly `n` samples
even after SIGKILL. A different config in the same folder is refused; a larger `n` extends the run.
The manifest's `run_id` names the run across resumes (the shared near-duplicate index keeps its keys
under it). On Ray, a worker whose restarts are spent stops the run: manifest `status: stopped` with the
reason, the finished batches kept, one error line; the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import platform
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends import BACKENDS, Backend, Completion, get_backend, parse_with_schema
from backends.ray_pool import RayBackendPool, WorkerLost, default_workers, init
from backends.ray_workers import use_key_file
from core.errors import fail
from core.io import JsonlAppender, read_jsonl, read_records, write_json_atomic, write_jsonl_atomic
from core.records import Record, now
from core.task_spec import Task
from core.tasks import load_task
from generator.diversity import diversity_report
from generator.prompts import Plan, PlanConfig, Planner
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

    def identity(self, seeds_digest: str) -> dict[str, Any]:
        """What makes two runs the same run (not `n`, `out`, batch size, device or Ray: those may change)."""
        return {
            "task": self.task, "lang": self.lang, "backend": self.backend, "model": self.model,
            "seeds_sha256": seeds_digest, "constrained": self.constrained,
            **{f"plan.{k}": list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.plan).items()},
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


def _to_record(task: Task, lang: str, plan: Plan, planner: Planner, completion: Completion,
               backend: Backend, sampling: dict[str, Any], schema: Any) -> Record:
    provenance = planner.provenance(plan)
    provenance.update(model=backend.model_id, backend=backend.name, sampling=sampling,
                      finish_reason=completion.finish_reason,
                      tokens={"prompt": completion.prompt_tokens, "completion": completion.completion_tokens})
    if completion.extra:
        provenance["extra"] = completion.extra
    parsed, error = completion.parsed, completion.error
    if parsed is None and error is None:  # unconstrained backend: parse and validate here
        parsed, error = parse_with_schema(completion.text.strip(), schema)
    if parsed is None:
        provenance["error"] = error or "no output"
        provenance["raw_output"] = completion.text[:2000]
        return Record.new(task=task.name, lang=lang, text="", source="synthetic", provenance=provenance)
    labels = {k: str(v) for k, v in parsed.items() if k != task.input_name}
    if labels.get(task.label_name) != plan.target_label:
        provenance["label_mismatch"] = True  # flagged, not dropped: validators and reviewers decide
    return Record.new(task=task.name, lang=lang, text=str(parsed[task.input_name]), labels=labels,
                      source="synthetic", provenance=provenance)


def summarise(records: list[Record], task: Task) -> dict[str, Any]:
    """Counts for the manifest: parsed, failed, per label, template and strategy, tokens."""
    parsed = [r for r in records if not r.provenance.get("error")]
    tokens = Counter()
    for r in records:
        tokens.update(r.provenance.get("tokens", {}))
    return {
        "samples": len(records), "parsed": len(parsed), "failed": len(records) - len(parsed),
        "parse_rate": round(len(parsed) / len(records), 4) if records else None,
        "label_mismatch": sum(1 for r in parsed if r.provenance.get("label_mismatch")),
        "by_label": dict(Counter(r.labels.get(task.label_name) for r in parsed)),
        "by_target_label": dict(Counter(r.provenance.get("target_label") for r in records)),
        "by_template": dict(Counter(r.provenance.get("template_id") for r in records)),
        "by_strategy": dict(Counter(r.provenance.get("sampling", {}).get("strategy") for r in records)),
        "errors": dict(Counter(str(r.provenance["error"]).split(":")[0] for r in records if r.provenance.get("error"))),
        "tokens": {"prompt": tokens["prompt"], "completion": tokens["completion"]},
    }


def _batches(plans: list[Plan], size: int) -> list[list[Plan]]:
    """Plans grouped by sampling parameters (one backend call takes one `Sampling`), then chunked."""
    groups: dict[tuple[float, float], list[Plan]] = {}
    for plan in plans:
        groups.setdefault((plan.sampling.temperature, plan.sampling.top_p), []).append(plan)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


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


def run_generation(cfg: RunConfig, *, backend: Backend | None = None, progress: bool = True) -> RunResult:
    """Generate (or finish generating) `cfg.n` samples into `cfg.out`; see the module docstring."""
    if cfg.n <= 0:
        fail(f"--n must be a positive number of samples (got {cfg.n})")
    if cfg.backend not in BACKENDS:
        fail(f"unknown backend '{cfg.backend}' (available: {', '.join(BACKENDS)})")
    task = load_task(cfg.task)
    seeds = load_seeds(cfg.seeds, task, cfg.lang)
    planner = Planner(task, cfg.lang, seeds, cfg.plan)
    identity = cfg.identity(file_digest(cfg.seeds))
    cfg.out.mkdir(parents=True, exist_ok=True)
    previous = _check_folder(cfg.out, identity)
    spent = float((previous or {}).get("cost_usd", 0.0))
    elapsed_before = float((previous or {}).get("time", {}).get("elapsed_s", 0.0))
    started = (previous or {}).get("time", {}).get("started") or now().isoformat()
    schema = task.generation_schema()

    appender = JsonlAppender(cfg.out / SAMPLES)  # repairs a partial last line left by a kill
    records = read_records(cfg.out / SAMPLES, allow_empty=True) if (cfg.out / SAMPLES).stat().st_size else []
    done = {r.provenance.get("index") for r in records}
    missing = [i for i in range(cfg.n) if i not in done]
    # Not derived from the seed: two runs of one config (two folders, two people) must not share it.
    run_id = (previous or {}).get("run_id") or uuid.uuid4().hex
    manifest: dict[str, Any] = {"config": identity, "run_id": run_id, "n": cfg.n, "versions": _versions(),
                                "status": "running"}
    session_start = time.perf_counter()

    def write_manifest(status: str, reason: str = "") -> None:
        if hasattr(model, "restarts"):  # a Ray pool: how many of its workers came back (batches retried)
            manifest["ray"] = {"workers": len(model.actors), "restarts": model.restarts}
        manifest.update(status=status, stop_reason=reason, counts=summarise(records, task),
                        cost_usd=round(_spent(model, spent), 6),
                        time={"started": started, "updated": now().isoformat(),
                              "elapsed_s": round(elapsed_before + time.perf_counter() - session_start, 2)})
        write_json_atomic(cfg.out / MANIFEST, manifest)

    model: Any = None
    write_manifest("running")
    reason = ""
    if missing:
        try:
            model = backend or _load_backend(cfg, spent, run_id)
            if getattr(model, "run_id", "") is None:
                model.run_id = run_id  # a pool the caller made serves this run (its shared index keys)
            reason = _generate_missing(cfg, task, planner, model, schema, missing, records, appender,
                                       write_manifest, progress)
        except WorkerLost as exc:
            appender.close()
            write_manifest("stopped", str(exc))
            if backend is None and model is not None:
                model.close()
            fail(f"generate: {exc}; {len(records)} of {cfg.n} samples are in {cfg.out / SAMPLES}: "
                 "re-run the same command to resume")
    appender.close()
    records.sort(key=lambda r: r.provenance.get("index", 0))
    manifest["diversity"] = diversity_report(records)
    write_manifest("stopped" if reason else "complete", reason)
    return RunResult(cfg.out, records, manifest, model)


def _generate_missing(cfg: RunConfig, task: Task, planner: Planner, model: Backend, schema: Any,
                      missing: list[int], records: list[Record], appender: JsonlAppender,
                      write_manifest: Any, progress: bool) -> str:
    """Generate the missing indices batch by batch; returns a stop reason, or "" when all are done."""
    from tqdm import tqdm

    bar = tqdm(total=cfg.n, initial=cfg.n - len(missing), unit="sample", disable=not progress,
               desc=f"generate {cfg.task}/{cfg.lang}", dynamic_ncols=True)
    tokens, start = 0, time.perf_counter()
    batches = _batches([planner.plan(i) for i in missing], cfg.batch_size)
    # One backend call takes one Sampling (the batch shares temperature and top-p) and one seed per
    # sample: sample i's draw depends on (run seed, i) only, never on its batch or on the worker.
    if hasattr(model, "map_batches"):  # a Ray pool: batches run on the workers, results come back in order
        calls = (([p.messages for p in b], b[0].sampling, [p.sampling.seed for p in b]) for b in batches)
        results = model.map_batches(cfg.task, cfg.constrained, calls)
    else:
        results = _in_process(model, batches, schema if cfg.constrained else None)
    try:
        for batch, completions in zip(batches, results, strict=False):
            rows = []
            for plan, completion in zip(batch, completions, strict=True):
                if completion.extra.get("spend_cap"):
                    continue  # not generated: a resume with a higher cap does it
                rows.append(_to_record(task, cfg.lang, plan, planner, completion, model,
                                       plan.sampling.as_dict(), schema))
                tokens += completion.completion_tokens
            appender.write_batch(rows)
            records.extend(rows)
            bar.update(len(rows))
            parsed = sum(1 for r in records if not r.provenance.get("error"))
            bar.set_postfix(accepted=f"{parsed / max(len(records), 1):.0%}",
                            tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):.0f}")
            if len(rows) < len(batch):
                write_manifest("stopped", "spend cap reached (--max-cost-usd)")
                return "spend cap reached (--max-cost-usd)"
            write_manifest("running")
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
