"""Fixtures of the zoo tests (marker `zoo`): each family's model is built and loaded once per session.

Every zoo test module sets `pytestmark = pytest.mark.zoo`; `pytest -m zoo` runs them all.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from backends.models import ZOO
from core.inputs import ColumnMap, load_inputs
from core.io import write_jsonl_atomic
from core.records import Record
from core.tasks import load_task
from tests.conftest import SAMPLES


@cache
def loaded(name: str):
    """(model, tokenizer) of zoo model `name` on the CPU, loaded once per session (never changed in place:
    the trainer loads its own copy, the evaluator removes the adapter it applies)."""
    from backends.models import load_model

    return load_model(name, device="cpu")


@pytest.fixture(params=ZOO)
def family(request) -> str:
    """Each zoo model in turn: tiny-llama3, tiny-qwen2, tiny-mistral, tiny-gemma, tiny-phi3."""
    return request.param


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every zoo test on one intra-op thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def fin_task():
    return load_task("fin_sentiment")


@cache
def fin_records() -> tuple[Record, ...]:
    """8 fin_sentiment records, 4 English and 4 Vietnamese."""
    task = load_task("fin_sentiment")
    en = load_inputs([str(SAMPLES / "fin_sentiment" / "en.jsonl")], task, ColumnMap(lang="en"))
    vi = load_inputs([str(SAMPLES / "fin_sentiment" / "vi.jsonl")], task, ColumnMap(lang="vi"))
    return tuple(en[:4] + vi[:4])


@cache
def trained(name: str, folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One LoRA step of the real trainer on `fin_records()` (once per family per session): the rows TRL
    trains on (input_ids, labels) and a summary; the adapter is saved to `folder / name`."""
    from trainer.config import TrainConfig
    from trainer.sft import build_trainer

    task = load_task("fin_sentiment")
    out = folder / name
    # max_length 512: Vietnamese costs Mistral's 32k SentencePiece about 270 tokens a sentence (byte
    # fallback for most diacritics), and TRL drops a row whose answer the truncation would cut.
    cfg = TrainConfig(task=task.name, model=name, out=str(out), max_steps=1, batch_size=2, max_length=512,
                      val_fraction=0.0, device="cpu").resolved()
    trainer = build_trainer(cfg, task, list(fin_records()), [])
    rows = [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in trainer.train_dataset]
    result = trainer.train()
    trainer.model.save_pretrained(out)
    trainer.processing_class.save_pretrained(out)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return rows, {"steps": trainer.state.global_step, "train_loss": result.training_loss, "adapter": out,
                  "trainable_params": trainable}


@pytest.fixture(scope="session")
def zoo_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def fin_few() -> list[Record]:
    return list(fin_records())


@pytest.fixture(scope="session")
def fin_few_file(fin_few, tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo-fin") / "train.jsonl"
    write_jsonl_atomic(path, fin_few)
    return path


@pytest.fixture(scope="session")
def support_task():
    return load_task("support_intent")


@pytest.fixture(scope="session")
def support_records(samples_dir, support_task) -> list[Record]:
    cols = ColumnMap(text="ticket", label="intent", outputs={"reply": "ideal_reply"})
    return load_inputs([str(samples_dir / "northstar" / "train.jsonl")], support_task, cols)
