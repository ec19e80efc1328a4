"""Fixtures of the generator tests: seed records built from the hand-written samples."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from core.records import Record
from core.tasks import load_task

REPO = Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a CLI subprocess: offline, one torch thread (the test machine is shared)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(REPO), **extra}


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
