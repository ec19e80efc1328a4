"""Language identification shared by the data stage and the validators.

langdetect samples n-grams at random, so it is always called through `language_probs` with a seed;
Vietnamese gets a signal of its own, the share of syllables with Vietnamese letters or tone marks,
because short, lower-cased Vietnamese defeats langdetect.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

_SYLLABLE = re.compile(r"[^\W\d_]+", re.UNICODE)
# Letters that exist only because of Vietnamese diacritics (plus đ).
_VI_BASE = set("ăâđêôơư")
_VI_MARKS = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323",  # huyền, sắc, ngã, hỏi, nặng
             "\u0302", "\u0306", "\u031b"}                      # â ê ô, ă, ơ ư written decomposed


def vietnamese_diacritic_share(text: str) -> float:
    """Share of syllables carrying a Vietnamese-specific letter or tone mark (0.0 for English text)."""
    syllables = _SYLLABLE.findall(unicodedata.normalize("NFC", text).casefold())
    if not syllables:
        return 0.0
    marked = sum(
        any(ch in _VI_BASE for ch in syl) or any(m in _VI_MARKS for m in unicodedata.normalize("NFD", syl))
        for syl in syllables
    )
    return marked / len(syllables)


@cache
def _detect_langs():
    from langdetect import detect_langs

    return detect_langs


def language_probs(text: str, seed: int = 0) -> dict[str, float]:
    """langdetect's probabilities per language code (e.g. {'vi': 0.99}); {} when it finds no features."""
    from langdetect import DetectorFactory
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = seed
    try:
        return {item.lang: float(item.prob) for item in _detect_langs()(text)}
    except LangDetectException:
        return {}
