"""Per-text features the EDA counts and the cleaner acts on: URLs, cashtags, emoji, numbers,
encoding damage, language ID (with a diacritics check for Vietnamese) and UIT-VSFC's artefacts."""

from __future__ import annotations

import re
from functools import lru_cache

import ftfy

from core.lang import language_probs, vietnamese_diacritic_share

URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
CASHTAG = re.compile(r"(?<![\w$])\$[A-Za-z][A-Za-z.]{0,9}\b")
NUMBER = re.compile(r"\d")
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f]")
# Financial PhraseBank's lossy damage: UTF-8 bytes shown through an OEM code page, with the box-drawing
# lead byte replaced by '+' or '-' ("Sepp+ñl+ñ" for "Seppälä"). A byte is lost, so ftfy cannot repair it.
LOSSY_MOJIBAKE = re.compile(r"[+\-][\u00a0-\u00ff](?=[\w+\s.,'-]|$)")
# UIT-VSFC's preprocessing: masked lecturer names and emoticons spelled as words.
MASKED_NAME = re.compile(r"\bwzjwz\d+\b")
EMOTICON_WORD = re.compile(r"\bcolon\w+\b|\bdoubledot\w*\b")
SPACED_PUNCT = re.compile(r"\s([.,!?;:)](?:\s|$))")
EN_FUNCTION_WORDS = frozenset(
    ["the", "a", "an", "of", "to", "in", "on", "for", "and", "is", "are", "was", "were", "be", "by", "with", "from", "at", "as", "its", "it", "that", "this", "has", "have", "had", "will", "said", "says", "than", "up", "down", "over", "after", "per"]
)
FOREIGN_FUNCTION_WORDS = frozenset(
    ["der", "die", "das", "und", "des", "im", "mit", "von", "auf", "für", "dem", "den", "ist", "ein", "eine", "le", "la", "les", "et", "du", "un", "une", "est", "pour", "sur", "el", "los", "las", "y", "del", "con", "por", "para", "una", "het", "een", "voor", "met", "zijn", "il", "della", "di", "che", "per", "och", "med", "för", "på", "av", "não", "com", "uma"]
)


def has_url(text: str) -> bool:
    return bool(URL.search(text))


def has_cashtag(text: str) -> bool:
    return bool(CASHTAG.search(text))


def has_emoji(text: str) -> bool:
    return bool(EMOJI.search(text))


def has_number(text: str) -> bool:
    return bool(NUMBER.search(text))


def mojibake(text: str) -> str | None:
    """'repairable' (ftfy's encoding fix changes it), 'lossy' (damage ftfy cannot undo) or None."""
    if ftfy.fix_encoding(text) != text:
        return "repairable"
    if LOSSY_MOJIBAKE.search(text):
        return "lossy"
    return None


def langdetect_top(text: str) -> tuple[str, float]:
    """langdetect's best guess and its probability, on the text without URLs, cashtags and digits."""
    core = re.sub(r"\d+", " ", CASHTAG.sub(" ", URL.sub(" ", text)))
    probs = language_probs(core)
    if not probs:
        return "unknown", 0.0
    best = max(probs, key=probs.__getitem__)
    return best, probs[best]


@lru_cache(maxsize=200_000)  # EDA and cleaning ask about the same texts
def language_check(text: str, expected: str, vi_min_share: float = 0.3) -> tuple[bool, str]:
    """Whether `text` is in `expected`, and what it was taken for (a language code or the rule used).

    Vietnamese: short, lower-cased, word-segmented text defeats langdetect (it often answers 'ca',
    'it' or 'vi' with low confidence), so a text whose syllables carry enough Vietnamese marks is
    Vietnamese without asking it; one with a few marks must not be detected as English, one with
    none must be detected as Vietnamese.
    English: text dense in English function words is accepted at once (cheap). Otherwise langdetect
    alone is not trusted: ticker-and-figure headlines ("Grom Social Enterprises reports Q3 results")
    come back as Catalan or French with probability 1.0. A row is rejected only when langdetect is
    confident AND the text has no English function word AND at least two function words of the
    language-ID's usual confusions (de, fr, es, nl, it, pt, sv).
    """
    words = re.findall(r"[^\W\d_]+", text.lower())
    if expected == "vi":
        share = vietnamese_diacritic_share(text)
        if share >= vi_min_share:
            return True, "vi-diacritics"
        lang, _ = langdetect_top(text)
        # a few marks and no confident English: still Vietnamese ("nói lan man .")
        return lang == "vi" or (share > 0 and lang != "en"), lang
    en_hits = sum(w in EN_FUNCTION_WORDS for w in words)
    if expected == "en" and words and en_hits / len(words) >= 0.15:
        return True, "en-function-words"
    if expected == "en" and vietnamese_diacritic_share(text) >= vi_min_share:
        return False, "vi-diacritics"
    lang, prob = langdetect_top(text)
    if lang in (expected, "unknown") or prob < 0.9:
        return True, lang
    if expected != "en":
        return False, lang
    foreign = sum(w in FOREIGN_FUNCTION_WORDS for w in words)
    return not (en_hits == 0 and foreign >= 2), lang
