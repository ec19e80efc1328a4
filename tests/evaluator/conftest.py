"""Evaluator fixtures: the fin_sentiment samples as records, split into train / eval, and one
LoRA adapter from the trainer on the tiny model (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.io import read_jsonl, write_jsonl_atomic
from core.records import Record
from core.tasks import load_task


@pytest.fixture(scope="session")
def fin_task():
    return load_task("fin_sentiment")


@pytest.fixture(scope="session")
def sample_records(fin_task, samples_dir) -> list[Record]:
    """Every sample row whose label the task knows, as records (synonyms normalised)."""
    records, seen = [], set()
    for lang in ("en", "vi"):
        for row in read_jsonl(samples_dir / "fin_sentiment" / f"{lang}.jsonl"):
            label = fin_task.normalise_label(row["label"])
            record = Record.new(task="fin_sentiment", lang=lang, text=row["text"], labels={"label": label})
            if label and record.id not in seen:  # the planted exact duplicates would leak across splits
                seen.add(record.id)
                records.append(record)
    return records


@pytest.fixture(scope="session")
def split(sample_records) -> tuple[list[Record], list[Record]]:
    """(train, eval): every third record is held out, per language order."""
    train = [r.model_copy(update={"split": "train"}) for i, r in enumerate(sample_records) if i % 3]
    held = [r.model_copy(update={"split": "eval"}) for i, r in enumerate(sample_records) if i % 3 == 0]
    return train, held


@pytest.fixture(scope="session")
def data_files(split, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("evaldata")
    train, held = split
    write_jsonl_atomic(folder / "train.jsonl", train)
    write_jsonl_atomic(folder / "eval.jsonl", held)
    return {"train": folder / "train.jsonl", "eval": folder / "eval.jsonl"}


@pytest.fixture(scope="session")
def adapter(fin_task, split, tmp_path_factory) -> Path:
    """A LoRA adapter from the real trainer after a few steps on the train split."""
    from trainer.config import TrainConfig
    from trainer.sft import train

    out = tmp_path_factory.mktemp("adapter") / "adapter"
    train(TrainConfig(task=fin_task.name, model="tiny", out=str(out), max_steps=10, batch_size=4,
                      learning_rate=5e-3, val_fraction=0.0, device="cpu"), records=split[0], task=fin_task)
    return out
