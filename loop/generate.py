"""The generation loop: generate → validate → enqueue, the chain `generate.py` and `demo.py` run.

    from loop.generate import generate
    result = generate(task="fin_sentiment", lang="en", n=500, seeds="runs/fin/data/train.jsonl",
                      out="runs/fin/synthetic", model="tiny")
    result = generate(task="fin_sentiment", lang="en", accepted=200, seeds=..., out=...)  # 200 that pass

`generate` runs (or resumes) a generation (`generator.runner`), then the task's validator chain
(`accepted.jsonl`, `rejected.jsonl`, `validation.json`) and the review queue (`review.db`) through
`post_process`. With `accepted=N` it generates and validates in rounds until N samples pass
(`generator.acceptance`), then queues them. The models the validators ask are counted into the run's
usage table (`manifest.json` `usage`: one row per stage, `backends.metering`). Given a real held-out split
(`data_value_eval`), it then writes the data-value report of the accepted samples against the real seeds
into `<out>/data_value/` (`data_value.json`, `report.md`, figures: `evaluator.data_value`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends import get_backend
from backends.ray_pool import ValidationPool, default_workers, init
from core.errors import fail
from core.io import read_records, write_json_atomic, write_jsonl_atomic
from core.records import Record
from core.tasks import load_task
from core.urls import redact_url
from evaluator.data_value import data_value
from evaluator.run import load_labelled
from generator.acceptance import generate_accepted
from generator.diversity import diversity_report
from generator.runner import SPEND_LEDGER, Run, RunConfig, RunResult, make_config, run_generation
from generator.seeds import load_seeds
from review_app.store import ReviewStore
from validators.chain import Chain
from validators.shared_index import SharedIndexError


def generate(*, task: str, lang: str, seeds: str | Path, out: str | Path, n: int | None = None,
             accepted: int | None = None, max_candidates: int | None = None, on_exhausted: str = "return_partial",
             model: str = "tiny", backend: str = "transformers", validate: bool = True, review: bool = True,
             references: list[str | Path] = (), redis_url: str | None = None, progress: bool = True,
             data_value_eval: str | Path | None = None, data_value_real: str | Path | None = None,
             judge: dict[str, Any] | None = None, **options: Any) -> RunResult:
    """Run (or resume) a generation, then the validators and the review queue when available.

    `n`: generate this many candidates, then validate them. `accepted`: instead, generate in rounds until
    this many samples pass the validators (at most `max_candidates`, default 5 x `accepted`; when they are
    spent, `on_exhausted` "return_partial" keeps what passed, "fail" raises `UserError` after writing it).
    `references` are record files the validators compare with besides the seeds: rows whose `split`
    is eval/test/dev are contamination checks (a sample near one is rejected).
    `redis_url` keeps the near-duplicate index in Redis; with `ray` too, that check runs on the Ray
    workers through it (validators/shared_index.py), with the verdicts of the in-process check.
    `data_value_eval`: a real held-out split; after validation the accepted samples get the data-value
    report against the real records of the run's language (`data_value_real`, default the seeds).
    `judge`: turn the LLM judge on: {"model", "backend"} (None: the generator's), "mode" (filter / flag;
    None: the task's) and "thresholds" with the "calibration" they came from
    (`review_app.calibration.calibrated_thresholds`); its tokens, dollars and settings are its row of
    `manifest.json`'s usage table.
    `options` are `RunConfig` fields (batch_size, constrained, max_cost_usd, price_per_1k, device,
    ray, ray_workers, api_key_file)
    or `PlanConfig` fields (seed, k, templates, samples_per_prompt, temperature, top_p,
    temperature_mix, max_new_tokens, weights: sampling weights from `review_app.weights`).
    """
    if (n is None) == (accepted is None):
        fail("give either n (candidates to generate) or accepted (samples that pass the validators)")
    cfg = make_config(task=task, lang=lang, n=n or 0, seeds=seeds, out=out, model=model, backend=backend,
                      accepted=accepted, max_candidates=max_candidates, on_exhausted=on_exhausted, **options)
    if accepted is not None:
        if not validate:
            fail("--accepted counts the samples that pass the validators: drop --no-validate")
        result = _generate_accepted(cfg, review=review, references=references, redis_url=redis_url,
                                    judge=judge, progress=progress)
    else:
        result = run_generation(cfg, progress=progress)
    try:
        if accepted is None:
            post_process(result, cfg, validate=validate, review=review, references=references, redis_url=redis_url,
                         judge=judge)
        if validate and data_value_eval is not None:
            write_data_value(cfg, data_value_eval, data_value_real or cfg.seeds)
    finally:
        if cfg.ray is not None and result.backend is not None:
            result.backend.close()  # the Ray workers; their results are all in the folder
    if result.acceptance is not None and result.acceptance.exhausted and cfg.on_exhausted == "fail":
        fail(result.acceptance.line)
    return result


def _references(cfg: RunConfig, references: list[str | Path]) -> list[Record]:
    known = load_seeds(cfg.seeds, load_task(cfg.task), cfg.lang)
    for path in references:
        known += read_records(path)
    return known


def _chain(cfg: RunConfig, backend: Any, references: list[str | Path], redis_url: str | None, workers: Any,
           judge: dict[str, Any] | None) -> Chain:
    """The task's validator chain over the seeds and references, asking `backend` (and the judge's model)."""
    judge_backend = _judge_backend(cfg, backend, judge) if judge is not None else None
    return Chain(load_task(cfg.task), _references(cfg, references), backend, seed=cfg.plan.seed, redis_url=redis_url,
                 workers=workers, judge_backend=judge_backend, enable=["judge"] if judge is not None else [],
                 overrides=_judge_options(judge))


def _generate_accepted(cfg: RunConfig, *, review: bool, references: list[str | Path], redis_url: str | None,
                       judge: dict[str, Any] | None, progress: bool) -> RunResult:
    """Rounds of generate → validate until `cfg.accepted` pass (generator.acceptance), then the review queue."""
    run = Run(cfg, progress=progress)
    run.save("running")
    backend = run.backend()  # self-consistency asks the generation model itself
    workers, own_pool = _validation_workers(backend, cfg, redis_url, run.run_id)
    try:
        chain = _chain(cfg, backend, references, redis_url, workers, judge)
        outcome = generate_accepted(run, chain, base_weights=cfg.plan.weights, progress=progress)
    except SharedIndexError as exc:  # Redis failed mid-check: no verdicts rather than wrong ones
        run.save("stopped", str(exc))
        fail(f"validation stopped: {exc}; the samples stay in {cfg.out / 'samples.jsonl'}: "
             "re-run the same command to go on")
    finally:
        run.close()
        if own_pool is not None:
            own_pool.close()
    result = run.result()
    result.acceptance = outcome
    _judge_details(run, judge, json.loads((cfg.out / "validation.json").read_text(encoding="utf-8")))
    run.manifest["diversity"] = diversity_report(result.records)
    run.save(run.manifest["status"], run.manifest.get("stop_reason", ""))
    print(f"validation: {len(outcome.accepted)} accepted -> {cfg.out}/accepted.jsonl")
    if review and outcome.accepted:
        _enqueue(cfg, outcome.accepted)
    return result


def post_process(result: RunResult, cfg: RunConfig, *, validate: bool, review: bool,
                 references: list[str | Path] = (), redis_url: str | None = None,
                 judge: dict[str, Any] | None = None) -> None:
    """The task's validator chain on the parsed samples, then the review queue for the accepted ones.

    With `redis_url` and `cfg.ray`, the near-duplicate check is split over the Ray workers (the
    generation pool, or a validation-only pool when this call generated nothing) through one Redis index.
    The validators' usage joins the run's table in `manifest.json`.
    """
    records = result.parsed  # failed rows stay in samples.jsonl with their reason; only parsed go on
    if not validate or not records:
        return
    # Self-consistency asks the generation model itself: reuse the one already loaded (a second vLLM
    # engine would not fit beside the first); a resumed run with nothing left to generate loads it.
    backend = result.backend
    if backend is None and cfg.backend != "openai":
        backend = get_backend(cfg.backend, **({"model": cfg.model, "device": cfg.device}
                                              if cfg.backend == "transformers" else {"model": cfg.model}))
    workers, own_pool = _validation_workers(result.backend, cfg, redis_url, result.manifest.get("run_id"))
    chain = _chain(cfg, backend, references, redis_url, workers, judge)
    run = result.run
    try:
        accepted, rejected, report = chain.run(records)
    except SharedIndexError as exc:  # Redis failed mid-check: no verdicts rather than wrong ones
        fail(f"validation stopped: {exc}; the samples stay in {cfg.out / 'samples.jsonl'}: "
             "re-run the same command to validate them")
    except KeyboardInterrupt:  # what the validators spent so far stays counted
        if run is not None:
            run.stages.update(chain.usage)
            run.save("interrupted", "interrupted (Ctrl-C) while validating")
        raise
    finally:
        if own_pool is not None:
            own_pool.close()
    if workers is not None:
        report["near_duplicates_on"] = {"ray_workers": len(workers.actors), "redis": redact_url(redis_url)}
    write_jsonl_atomic(cfg.out / "accepted.jsonl", accepted)
    write_jsonl_atomic(cfg.out / "rejected.jsonl", rejected)
    if run is not None:
        run.stages.update(chain.usage)
        _judge_details(run, judge, report)
        run.save(run.manifest["status"], run.manifest.get("stop_reason", ""))
        report["usage"] = run.usage()["stages"]
    write_json_atomic(cfg.out / "validation.json", report)
    print(f"validation: {len(accepted)} accepted, {len(rejected)} rejected -> {cfg.out}/accepted.jsonl")
    if review and accepted:
        _enqueue(cfg, accepted)


def _enqueue(cfg: RunConfig, accepted: list[Record]) -> None:
    store = ReviewStore(cfg.out / "review.db")
    try:
        queued = store.enqueue(accepted, seed=cfg.plan.seed, source_file=str(cfg.out / "accepted.jsonl"))
    finally:
        store.close()
    print(f"review queue: {queued.added} added ({queued.skipped} already there) -> {cfg.out}/review.db")


def write_data_value(cfg: RunConfig, eval_path: str | Path, real_path: str | Path) -> dict[str, Any] | None:
    """The data-value report of `accepted.jsonl` in `<out>/data_value/`, on the run's language only."""
    accepted = cfg.out / "accepted.jsonl"
    if not accepted.is_file():
        print("data value: no accepted.jsonl (nothing parsed), no report")
        return None
    task = load_task(cfg.task)
    real = [r for r in load_labelled(real_path, task, "real") if r.lang == cfg.lang]
    held = [r for r in load_labelled(eval_path, task, "eval") if r.lang == cfg.lang]
    if not real or not held:
        print(f"data value: no real {'records' if not real else 'eval records'} in '{cfg.lang}', no report")
        return None
    out = cfg.out / "data_value"
    result = data_value(task, real, held, accepted, out, seed=cfg.plan.seed)
    print(f"data value: {result['verdict']} -> {out}/report.md")
    return result


def _judge_options(judge: dict[str, Any] | None) -> dict[str, dict[str, Any]] | None:
    """The judge's `mode` and `thresholds` where the caller set them (else the task YAML's)."""
    options = {k: (judge or {})[k] for k in ("mode", "thresholds") if (judge or {}).get(k)}
    return {"judge": options} if options else None


def _judge_backend(cfg: RunConfig, backend: Any, judge: dict[str, Any]) -> Any:
    """The judge's model: the generator's own (already loaded) unless another model or backend is named."""
    name, model = judge.get("backend") or cfg.backend, judge.get("model") or cfg.model
    if name == cfg.backend and model == cfg.model and backend is not None:
        return backend
    options: dict[str, Any] = {"model": model}
    if name == "transformers":
        options["device"] = cfg.device
    elif name == "openai":  # one spend cap for the run: the judge's requests go on generation's ledger
        options.update(max_cost_usd=cfg.max_cost_usd, ledger=cfg.out / SPEND_LEDGER,
                       price_per_1k=cfg.price_per_1k if model == cfg.model else None)
    return get_backend(name, **options)


def _judge_details(run: Run, judge: dict[str, Any] | None, report: dict[str, Any] | None = None) -> None:
    """The judge's row of the usage table also says what it decided and where its thresholds came from."""
    row = run.stages.get("judge")
    if row is None:
        return
    details = row.setdefault("details", {})
    stats = (report or {}).get("validators", {}).get("judge") or {}
    if stats:
        details.update(checked=stats["checked"], rejected=stats["failed"])
        if "skipped" in stats:
            details["skipped"] = stats["skipped"]
    if (judge or {}).get("calibration"):
        details["calibrated_from"] = judge["calibration"]


def _validation_workers(pool: Any, cfg: RunConfig, redis_url: str | None,
                        run_id: str | None) -> tuple[Any, Any]:
    """(workers for the shared near-duplicate check or None, a pool made here that the caller closes or None).

    The workers carry the manifest's `run_id`: the shared index is this run's, found again on a resume.
    """
    if not redis_url or cfg.ray is None:
        return None, None
    if hasattr(pool, "map_shards"):
        return pool, None  # the generation workers, idle now (the runner gave them the run id)
    made = ValidationPool(cfg.ray_workers or default_workers(init(cfg.ray), "transformers"), run_id=run_id)
    return made, made
