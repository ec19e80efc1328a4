"""Builders for planted test records."""

from __future__ import annotations

from core.records import Record


def make(text: str, label: str = "positive", lang: str = "en", rid: str | None = None, **fields) -> Record:
    rec = Record.new(task="fin_sentiment", lang=lang, text=text, labels={"label": label}, source="synthetic", **fields)
    if rid:
        rec.id = rid
    return rec
