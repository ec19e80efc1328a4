"""Shared fixtures. Tests never touch the network: the Hub is offline and the tiny model is local."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


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
