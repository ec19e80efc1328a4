"""Text helpers the validators share: tokens, diacritic folding, n-grams (the Vietnamese diacritic share is in core.lang)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from core.records import normalise_text

_WORD = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d")



def fold_diacritics(text: str) -> str:
    """Remove combining marks (and map đ → d), so 'Lợi nhuận' and 'Loi nhuan' compare equal."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return unicodedata.normalize("NFC", "".join(ch for ch in text if unicodedata.category(ch) != "Mn"))


def words(text: str, *, fold: bool = False, digits: bool = False) -> list[str]:
    """Case-folded word tokens (syllables for Vietnamese, which writes one syllable per token).

    Args:
        fold: drop diacritics first.
        digits: map every digit to 0, so texts that differ only in their figures match.
    """
    text = unicodedata.normalize("NFC", text).casefold()
    if fold:
        text = fold_diacritics(text)
    if digits:
        text = _DIGIT.sub("0", text)
    return _WORD.findall(text)


def ngrams(tokens: list[str], n: int) -> list[str]:
    """Space-joined n-grams; a text shorter than n gives one shingle of all its tokens."""
    if len(tokens) < n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def char_ngrams(text: str, n: int, *, spaces: bool = False) -> list[str]:
    """Character n-grams of the case-folded text without whitespace (for scripts without spaces between
    words), or with `spaces` of `normalise_text` (runs of whitespace as one space: one-line headlines)."""
    text = normalise_text(text) if spaces else "".join(text.split()).casefold()
    if len(text) < n:
        return [text] if text else []
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def contains_phrase(haystack_tokens: list[str], phrase_tokens: Iterable[str]) -> bool:
    """True when `phrase_tokens` occurs as consecutive whole tokens in `haystack_tokens`."""
    phrase = list(phrase_tokens)
    n = len(phrase)
    if not n:
        return False
    return any(haystack_tokens[i : i + n] == phrase for i in range(len(haystack_tokens) - n + 1))
