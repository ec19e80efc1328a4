"""Helpers for the validator tests: records built from the hand-written samples and planted cases."""

from __future__ import annotations

import pytest

from core.records import Record
from core.tasks import load_task


@pytest.fixture(scope="session")
def fin():
    return load_task("fin_sentiment")


@pytest.fixture(scope="session")
def sample_records(samples_dir, fin) -> list[Record]:
    """All 120 fin_sentiment sample rows as records (en then vi), ids kept (en_001 ...)."""
    from validators.inputs import read_inputs

    folder = samples_dir / "fin_sentiment"
    return read_inputs(folder / "en.jsonl", fin) + read_inputs(folder / "vi.jsonl", fin)
