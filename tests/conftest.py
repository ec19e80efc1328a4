"""Shared fixtures. Tests never touch the network: the Hub is offline and the tiny model is local."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.records import Record
from core.tasks import load_task

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs 2 pytest-xdist workers: each gets its share of the cores (set before torch loads, and
# inherited by the CLI subprocesses), or torch's default of every core per process would put 2 x 2
# OpenMP threads on 2 cores.
if _workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // _workers)))

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on 2 shared cores, OpenMP threads spinning against each other are slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """`../shared/datasets` (real labelled data); tests that need it skip when a clone lacks it."""
    if not (SHARED_DATASETS / "financial_phrasebank").is_dir():
        pytest.skip(f"real datasets not present at {SHARED_DATASETS} (only in the development checkout)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    from backends.models import tiny_model_path

    return tiny_model_path()


@pytest.fixture(scope="session")
def tiny(tiny_path):
    """(model, tokenizer) of the tiny model, loaded once per session on the CPU."""
    from backends.models import load_model

    return load_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_llama3_path() -> Path:
    from backends.models import TINY_LLAMA3, tiny_model_path

    return tiny_model_path(name=TINY_LLAMA3)


@pytest.fixture(scope="session")
def tiny_llama3(tiny_llama3_path):
    """(model, tokenizer) of `tiny-llama3` (Llama 3.2 shape: 128,256 tokens, tied), loaded once on the CPU."""
    from backends.models import TINY_LLAMA3, load_model

    return load_model(TINY_LLAMA3, device="cpu")


@pytest.fixture(scope="session")
def seeds_file(tmp_path_factory, samples_dir) -> Path:
    """fin_sentiment seeds in English and Vietnamese, labels mapped through the task's synonyms."""
    task = load_task("fin_sentiment")
    path = tmp_path_factory.mktemp("seeds") / "train.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for lang in ("en", "vi"):
            for line in (samples_dir / "fin_sentiment" / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                record = Record.new(task="fin_sentiment", lang=lang, text=row["text"],
                                    labels={"label": task.normalise_label(row["label"])},
                                    provenance={"row": row["id"]})
                out.write(record.model_dump_json() + "\n")
    return path
