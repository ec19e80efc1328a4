"""The whole data stage: load -> EDA -> clean -> select -> write, as one function and two commands.

    from data.prepare import prepare, run_eda
    summary = prepare(sources=["data/samples"], out="runs/demo", train_per_lang=40, eval_per_lang=10)

Outputs under `out`: `data/train.jsonl`, `data/eval.jsonl`, `data/removed.jsonl` (every dropped row
with its reason), `data/prepare_summary.json`, and `eda/report.md` with its plots.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from backends.models import load_tokenizer
from core.errors import fail
from core.io import write_json_atomic, write_jsonl_atomic
from core.records import Record
from core.tasks import load_task
from data.clean import CleanConfig, clean
from data.eda import compute_stats
from data.report import write_report
from data.select import SelectConfig, select
from data.sources import Source, TableSpec, check_unmapped, discover, load_hub

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE_DIR = REPO.parent / "shared" / "datasets"


def default_sources() -> list[str]:
    if DEFAULT_SOURCE_DIR.is_dir():
        return [str(DEFAULT_SOURCE_DIR)]
    fail(f"no source given and {DEFAULT_SOURCE_DIR} does not exist; pass --source-dir DIR, --source FILE "
         "(e.g. data/samples) or --hub")


def load_sources(task_name: str, sources: list[str] | None, hub: bool, table: TableSpec | None,
                 skip_unmapped: bool, phrasebank_level: str = "50Agree") -> tuple[Any, list[Source], dict]:
    task = load_task(task_name)
    loaded = load_hub(task) if hub else []
    if sources or not hub:
        loaded += discover(sources or default_sources(), task, table, phrasebank_level)
    unmapped = check_unmapped(loaded, task, allow=skip_unmapped)
    return task, loaded, unmapped


def _by_lang(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        out[r.lang].append(r)
    return dict(out)


def run_eda(*, task: str = "fin_sentiment", sources: list[str] | None = None, hub: bool = False,
            table: TableSpec | None = None, out: str | Path, model: str = "tiny",
            clean_cfg: CleanConfig | None = None, skip_unmapped: bool = False) -> dict[str, Any]:
    """EDA of the raw sources plus what cleaning would remove; writes `out/eda/report.md`."""
    task_obj, loaded, _ = load_sources(task, sources, hub, table, skip_unmapped)
    tokenizer = load_tokenizer(model)
    cfg = clean_cfg or CleanConfig()
    stats = compute_stats(loaded, task_obj, tokenizer, cfg.near_threshold)
    cleaned = clean([r for s in loaded for r in s.records], task_obj, cfg)
    report = write_report(stats, Path(out) / "eda", task_obj, _by_lang([r for s in loaded for r in s.records]),
                          tokenizer, cleaning=cleaned.counts)
    return {"report": str(report), "stats": stats, "cleaning": cleaned.counts}


def prepare(*, task: str = "fin_sentiment", sources: list[str] | None = None, hub: bool = False,
            table: TableSpec | None = None, out: str | Path, train_per_lang: int = 3000,
            eval_per_lang: int = 250, strategy: str = "balanced", seed: int = 0,
            clean_cfg: CleanConfig | None = None, model: str = "tiny", skip_unmapped: bool = False,
            phrasebank_level: str = "50Agree", eda: bool = True) -> dict[str, Any]:
    """Load, clean and select; write the splits, the removed rows, the summary and the EDA report.

    Returns the summary (also written to `out/data/prepare_summary.json`). A language with too few
    clean rows for the requested sizes is a UserError saying how many there are.
    """
    started = time.time()
    out = Path(out)
    cfg = clean_cfg or CleanConfig()
    task_obj, loaded, unmapped = load_sources(task, sources, hub, table, skip_unmapped, phrasebank_level)
    raw = [r for s in loaded for r in s.records]
    cleaned = clean(raw, task_obj, cfg)
    train, evals, selection = select(cleaned.kept, task_obj, SelectConfig(
        train_per_lang=train_per_lang, eval_per_lang=eval_per_lang, strategy=strategy, seed=seed,
        near_threshold=cfg.near_threshold))
    data_dir = out / "data"
    write_jsonl_atomic(data_dir / "train.jsonl", train)
    write_jsonl_atomic(data_dir / "eval.jsonl", evals)
    write_jsonl_atomic(data_dir / "removed.jsonl", cleaned.removed)
    summary: dict[str, Any] = {
        "task": task_obj.name,
        "sources": {s.key: {"lang": s.lang, "pool": s.pool, "path": s.path, "rows": len(s.records),
                            "unmapped": len(s.unmapped)} for s in loaded},
        "unmapped_labels": unmapped,
        "cleaning_config": cfg.as_dict(),
        "cleaning": cleaned.counts,
        "selection": selection,
        "train": len(train), "eval": len(evals),
        "files": {"train": str(data_dir / "train.jsonl"), "eval": str(data_dir / "eval.jsonl"),
                  "removed": str(data_dir / "removed.jsonl")},
    }
    if eda:
        tokenizer = load_tokenizer(model)
        stats = compute_stats(loaded, task_obj, tokenizer, cfg.near_threshold)
        summary["files"]["report"] = str(write_report(stats, out / "eda", task_obj, _by_lang(raw), tokenizer,
                                                      cleaning=cleaned.counts, selection=selection))
    summary["seconds"] = round(time.time() - started, 1)
    write_json_atomic(data_dir / "prepare_summary.json", summary)
    return summary
