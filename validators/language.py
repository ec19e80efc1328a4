"""`language`: is the text in the record's language? langdetect (fixed seed), plus Vietnamese diacritics.

langdetect is unreliable on a handful of words, and Vietnamese has a near-certain signal of its own:
the share of syllables with Vietnamese letters or tone marks. For Vietnamese records shorter than
`short_chars`, the score is the larger of the two; for longer ones langdetect alone decides (it
also recognises Vietnamese typed without diacritics).
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.lang import language_probs, vietnamese_diacritic_share
from core.records import Record, Verdict
from validators.base import BaseValidator, clip01


class LanguageValidator(BaseValidator):
    name = "language"
    defaults: ClassVar[dict[str, Any]] = {
        "min_prob": 0.5,               # langdetect probability of the record's language
        "short_chars": 40,             # below this, Vietnamese also counts the diacritic share
        "vi_diacritic_share": 0.3,     # share of marked syllables that makes short text Vietnamese
    }

    def check(self, records: list[Record]) -> list[Verdict]:
        return [self._one(r) for r in records]

    def _one(self, record: Record) -> Verdict:
        opts = self.options
        probs = language_probs(record.text, self.context.seed)
        expected = record.lang
        detected = max(probs, key=probs.get) if probs else None
        score = probs.get(expected, 0.0)
        details = {"detected": detected, "probs": {k: round(v, 3) for k, v in sorted(probs.items(), key=lambda kv: -kv[1])[:3]}}
        if expected == "vi":
            share = vietnamese_diacritic_share(record.text)
            details["vi_diacritic_share"] = round(share, 3)
            if len(record.text.strip()) < opts["short_chars"]:
                score = max(score, clip01(share / opts["vi_diacritic_share"]))
        if score < opts["min_prob"]:
            reason = f"language: expected '{expected}', looks like '{detected or 'unknown'}' (p({expected})={score:.2f})"
            return self.verdict(False, score, reason, rule="wrong_language", **details)
        return self.verdict(True, score, **details)

    def doubt(self, verdict: Verdict) -> float:
        if not verdict.passed:
            return 1.0
        return clip01((1.0 - (verdict.score or 0.0)) / max(1.0 - self.options["min_prob"], 1e-9))
