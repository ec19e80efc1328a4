"""The one record type that flows through every stage, as JSONL.

A record is a labelled example: real (from a dataset), synthetic (from the generator) or edited
(by an annotator). Nothing is dropped between stages: rejected records keep their verdicts.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["real", "synthetic", "edited"]
ReviewStatus = Literal["pending", "approved", "rejected", "edited"]

_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """The form used for ids and exact-duplicate checks: NFC, case-folded, whitespace collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip().casefold()


def record_id(task: str, lang: str, text: str) -> str:
    """Stable id: the same task, language and (normalised) text always give the same id."""
    key = f"{task}\x1f{lang}\x1f{normalise_text(text)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def content_version(text: str, labels: dict[str, str]) -> str:
    """The id of one version of a record's content: a hash of its exact text and labels (equal content, equal id)."""
    blob = json.dumps({"text": text, "labels": labels}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class Verdict(BaseModel):
    """One validator's opinion of one record."""

    model_config = ConfigDict(extra="forbid")

    name: str
    passed: bool
    score: float | None = None
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class Review(BaseModel):
    """The latest human (or named automatic) decision on a record."""

    model_config = ConfigDict(extra="forbid")

    status: ReviewStatus = "pending"
    reviewer: str | None = None
    time: datetime | None = None
    reason: str = ""


class Record(BaseModel):
    """A labelled example.

    Attributes:
        id: `record_id(task, lang, text)`; recomputed by `Record.new`, kept as-is when loaded.
        labels: the task's output fields, e.g. ``{"label": "positive"}`` or
            ``{"intent": "billing.seat_question", "reply": "..."}``.
        provenance: where it came from. Real rows: ``dataset``, ``row``, ``raw_label``.
            Synthetic rows: ``seed_ids``, ``template_id``, ``attributes``, ``model``, ``sampling``.
        meta: source-specific extras that are not labels (e.g. UIT-VSFC's ``topic``).
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    task: str
    lang: str
    text: str
    labels: dict[str, str] = Field(default_factory=dict)
    source: Source = "real"
    split: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    verdicts: list[Verdict] = Field(default_factory=list)
    review: Review = Field(default_factory=Review)

    @classmethod
    def new(cls, *, task: str, lang: str, text: str, **fields: Any) -> Record:
        return cls(id=record_id(task, lang, text), task=task, lang=lang, text=text, **fields)

    def verdict(self, name: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.name == name), None)

    @property
    def passed(self) -> bool:
        """True when every validator that judged it passed it (vacuously true with no verdicts)."""
        return all(v.passed for v in self.verdicts)


def now() -> datetime:
    return datetime.now(UTC)
