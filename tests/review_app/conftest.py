"""Records with everything the review app shows: verdicts, self-consistency votes, seeds, doubt."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.io import write_jsonl_atomic
from core.records import Record, Verdict

LABELS = ["positive", "negative", "neutral"]
HOSTILE = ["<script>alert(1)</script>", "![pwned](http://127.0.0.1:9/pwned.png) **not bold**"]


def make_records(n: int, *, hostile: bool = False) -> list[Record]:
    """`n` synthetic fin_sentiment records; doubt falls with the index, so item order is predictable."""
    texts = [*HOSTILE] if hostile else []
    texts += [f"Nordvik Shipping sample {i}: quarterly sales moved {i % 17}% year on year." for i in range(n - len(texts))]
    records = []
    for i, text in enumerate(texts):
        label = LABELS[i % 3]
        majority = label if i % 4 else LABELS[(i + 1) % 3]
        records.append(Record.new(
            task="fin_sentiment", lang="vi" if i % 5 == 4 else "en", text=text, labels={"label": label},
            source="synthetic",
            provenance={"seed_ids": [f"en_{i % 9 + 1:03d}"], "seed_texts": [f"Seed text <b>{i}</b>"],
                        "template_id": "fewshot" if i % 2 else "direct",
                        "sampling": {"strategy": "temperature" if i % 3 else "min_p", "temperature": 0.9},
                        "model": "tiny"},
            meta={"doubt": round(1.0 - i / max(n, 1), 6)},
            verdicts=[Verdict(name="schema", passed=True, score=1.0),
                      Verdict(name="dedup", passed=i % 7 != 3, score=0.2),
                      Verdict(name="self_consistency", passed=majority == label, score=0.67,
                              details={"votes": {label: 2, LABELS[(i + 1) % 3]: 1}, "majority": majority,
                                       "agreement": 0.67})],
        ))
    return records


@pytest.fixture
def accepted(tmp_path: Path) -> Path:
    path = tmp_path / "accepted.jsonl"
    write_jsonl_atomic(path, make_records(12, hostile=True))
    return path
