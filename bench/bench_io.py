"""Resumable-run writes: one fsync per batch of 64 records (ours) vs one fsync per record."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import BenchRow, ratio
from core.io import JsonlAppender
from core.records import Record

N, BATCH = 2048, 64


def _records() -> list[Record]:
    return [Record.new(task="fin_sentiment", lang="en", text=f"Sample {i} about profit", labels={"label": "neutral"})
            for i in range(N)]


def run() -> list[BenchRow]:
    records = _records()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with JsonlAppender(Path(tmp) / "batched.jsonl") as out:
            for i in range(0, N, BATCH):
                out.write_batch(records[i : i + BATCH])
        batched = N / (time.perf_counter() - start)

        start = time.perf_counter()
        with open(Path(tmp) / "each.jsonl", "a", encoding="utf-8") as handle:
            for rec in records:
                handle.write(rec.model_dump_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        each = N / (time.perf_counter() - start)
    return [BenchRow("io.append_fsync_per_batch_vs_per_record", batched, each, ratio(batched, each), 2.0, "records/s")]
