"""Fixtures of the trainer tests: small record sets from the hand-written samples."""

from __future__ import annotations

import pytest

from core.inputs import ColumnMap, load_inputs
from core.io import write_jsonl_atomic
from core.tasks import load_task


@pytest.fixture(scope="session")
def fin_task():
    return load_task("fin_sentiment")


@pytest.fixture(scope="session")
def fin_records(samples_dir, fin_task):
    """120 records (60 en, 60 vi) of the sample files, as the data stage would write them."""
    en = load_inputs([str(samples_dir / "fin_sentiment" / "en.jsonl")], fin_task, ColumnMap(lang="en"))
    vi = load_inputs([str(samples_dir / "fin_sentiment" / "vi.jsonl")], fin_task, ColumnMap(lang="vi"))
    return en + vi


@pytest.fixture(scope="session")
def fin_files(tmp_path_factory, fin_records):
    """(train.jsonl, curated.jsonl) as Record JSONL: real rows, and 'synthetic' ones like the review export."""
    folder = tmp_path_factory.mktemp("fin")
    real = fin_records[:100]
    curated = [r.model_copy(update={"source": "synthetic"}) for r in fin_records[100:]]
    write_jsonl_atomic(folder / "train.jsonl", real)
    write_jsonl_atomic(folder / "curated.jsonl", curated)
    return folder / "train.jsonl", folder / "curated.jsonl"


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    """One intra-op thread while the trainer tests run: on 2 cores shared with other test processes,
    OpenMP threads spinning against each other slow tiny-model training down several-fold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
