"""Cleaning: configurable steps, each one counted per language; removed rows keep their reason.

    result = clean(records, task, CleanConfig())
    result.kept, result.removed, result.counts["vi"]["near_duplicate"]

Order matters: text is repaired and normalised first (so duplicates are found on the repaired
text), rows that cannot be used are dropped next (damage, length, language), and duplicates go last.
Within one language, records of an eval pool come first, so when a text is in both a dataset's
train and dev split it is the dev copy that survives.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Literal

import ftfy
from tqdm import tqdm

from core.records import Record, Verdict, normalise_text, record_id
from core.task_spec import Task
from data import textstats
from data.dedup import DEFAULT_THRESHOLD, NearDuplicateIndex

# UIT-VSFC spelled emoticons (and a few symbols) as words before release; these are its spellings.
UIT_EMOTICONS = {
    "colonsmilesmile": ":))", "colonsmallsmile": ":)", "colonbigsmile": ":D", "colonsmile": ":)",
    "colonsadcolon": ":(", "colonsad": ":(", "coloncontemn": ":/", "colonlove": "<3", "colonhihi": "^^",
    "colondoublesurprise": ":O", "colonsurprise": ":o", "coloncolon": "::", "coloncc": ":cc", "doubledot": ":",
}
_UIT_EMOTICON = re.compile(r"\b(" + "|".join(sorted(UIT_EMOTICONS, key=len, reverse=True)) + r")\b")
_UIT_DOT_NUMBER = re.compile(r"\b(\d+)dot(\d+)\b")  # "1dot5" is how UIT-VSFC wrote 1.5
NAME_PLACEHOLDER = "[NAME]"
STEPS = ("lossy_mojibake", "too_short", "too_long", "wrong_language", "conflicting_labels",
         "exact_duplicate", "near_duplicate")


@dataclass
class CleanConfig:
    """Every step can be switched off; the defaults are what `python -m data prepare` uses.

    Attributes:
        urls: 'remove' (default: links carry no sentiment and cost tokens), 'mask' ("URL") or 'keep'.
        cashtags: 'keep' (default: "$AAPL" names the company), 'mask' ("TICKER") or 'strip' (drop "$").
        vi_restore: Vietnamese only: rejoin punctuation that word segmentation split off, spell
            emoticon words back as emoticons, and replace masked names with one placeholder.
        near_threshold: Jaccard of character 5-gram shingles at or above which two texts are near
            duplicates.
    """

    fix_unicode: bool = True
    drop_lossy_mojibake: bool = True
    whitespace: bool = True
    urls: Literal["keep", "mask", "remove"] = "remove"
    cashtags: Literal["keep", "mask", "strip"] = "keep"
    vi_restore: bool = True
    min_chars: int | None = None
    max_chars: int | None = None
    language_filter: bool = True
    drop_conflicts: bool = True
    dedup_exact: bool = True
    dedup_near: bool = True
    near_threshold: float = DEFAULT_THRESHOLD

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class CleanResult:
    kept: list[Record]
    removed: list[Record]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def transform(text: str, lang: str, cfg: CleanConfig) -> tuple[str, list[str]]:
    """The cleaned text and the names of the transformations that changed it."""
    changed = []

    def step(name: str, new: str) -> None:
        nonlocal text
        if new != text:
            changed.append(name)
            text = new

    if cfg.fix_unicode:
        step("mojibake_repaired" if textstats.mojibake(text) == "repairable" else "unicode_normalised",
             ftfy.fix_text(text))
    if cfg.urls != "keep":
        step("urls", textstats.URL.sub("URL" if cfg.urls == "mask" else " ", text))
    if cfg.cashtags == "mask":
        step("cashtags", textstats.CASHTAG.sub("TICKER", text))
    elif cfg.cashtags == "strip":
        step("cashtags", textstats.CASHTAG.sub(lambda m: m.group()[1:], text))
    if lang == "vi" and cfg.vi_restore:
        new = _UIT_EMOTICON.sub(lambda m: UIT_EMOTICONS[m.group()], text)
        new = _UIT_DOT_NUMBER.sub(r"\1.\2", new)
        new = textstats.MASKED_NAME.sub(NAME_PLACEHOLDER, new)
        step("vi_restored", textstats.SPACED_PUNCT.sub(r"\1", new))
    if cfg.whitespace:
        step("whitespace", re.sub(r"\s+", " ", text).strip())
    return text, changed


def _reject(rec: Record, step: str, reason: str) -> Record:
    return rec.model_copy(update={"verdicts": [*rec.verdicts, Verdict(name=f"clean:{step}", passed=False,
                                                                      reason=reason)]})


def clean(records: list[Record], task: Task, cfg: CleanConfig | None = None) -> CleanResult:
    """Run every enabled step over `records` (any mix of languages and pools)."""
    cfg = cfg or CleanConfig()
    min_chars = cfg.min_chars if cfg.min_chars is not None else task.input_min_chars
    max_chars = cfg.max_chars if cfg.max_chars is not None else task.input_max_chars
    counts: dict[str, Counter] = defaultdict(Counter)
    removed: list[Record] = []
    alive: list[Record] = []

    # eval pools first: a text in both a train and an eval pool keeps its eval copy
    ordered = sorted(records, key=lambda r: (r.lang, r.provenance.get("pool", "train") != "eval"))
    for rec in tqdm(ordered, desc="clean", unit="row", leave=False, disable=len(records) < 2000):
        c = counts[rec.lang]
        c["input"] += 1
        if cfg.drop_lossy_mojibake and textstats.mojibake(rec.text) == "lossy":
            c["lossy_mojibake"] += 1
            removed.append(_reject(rec, "lossy_mojibake", "encoding damage that ftfy cannot repair"))
            continue
        text, changed = transform(rec.text, rec.lang, cfg)
        for name in changed:
            c[name] += 1
        rec = rec.model_copy(update={"text": text, "id": record_id(rec.task, rec.lang, text)})
        if len(text) < min_chars:
            c["too_short"] += 1
            removed.append(_reject(rec, "too_short", f"{len(text)} chars < {min_chars}"))
            continue
        if len(text) > max_chars:
            c["too_long"] += 1
            removed.append(_reject(rec, "too_long", f"{len(text)} chars > {max_chars}"))
            continue
        if cfg.language_filter:
            ok, how = textstats.language_check(text, rec.lang)
            if not ok:
                c["wrong_language"] += 1
                removed.append(_reject(rec, "wrong_language", f"expected {rec.lang}, detected {how}"))
                continue
        alive.append(rec)

    by_lang: dict[str, list[Record]] = defaultdict(list)
    for rec in alive:
        by_lang[rec.lang].append(rec)
    kept: list[Record] = []
    for lang, recs in by_lang.items():
        recs = _drop_duplicates(recs, task, cfg, counts[lang], removed)
        counts[lang]["output"] = len(recs)
        kept += recs
    return CleanResult(kept, removed, {lang: dict(c) for lang, c in counts.items()})


def _drop_duplicates(recs: list[Record], task: Task, cfg: CleanConfig, c: Counter,
                     removed: list[Record]) -> list[Record]:
    label = task.label_name
    groups: dict[str, list[Record]] = defaultdict(list)
    for rec in recs:
        groups[normalise_text(rec.text)].append(rec)
    survivors = []
    for group in groups.values():
        labels = {r.labels[label] for r in group}
        if cfg.drop_conflicts and len(labels) > 1:
            c["conflicting_labels"] += len(group)
            reason = "the same text carries labels " + " / ".join(sorted(labels))
            removed += [_reject(r, "conflicting_labels", reason) for r in group]
            continue
        if cfg.dedup_exact:
            c["exact_duplicate"] += len(group) - 1
            removed += [_reject(r, "exact_duplicate", f"same text as {group[0].id}") for r in group[1:]]
            group = group[:1]
        survivors += group
    if not cfg.dedup_near or len(survivors) < 2:
        return survivors
    # near duplicates with the same label: keep the first. With different labels both stay (often a
    # real contrast: "profit rose" / "profit fell"); selection still keeps them on one side of the split.
    index = NearDuplicateIndex([r.text for r in survivors], cfg.near_threshold)
    drop: dict[int, tuple[int, float]] = {}
    for i, j, sim in index.pairs():
        if i not in drop and survivors[i].labels[label] == survivors[j].labels[label]:
            drop.setdefault(j, (i, sim))
    for j, (i, sim) in sorted(drop.items()):
        c["near_duplicate"] += 1
        removed.append(_reject(survivors[j], "near_duplicate", f"Jaccard {sim:.2f} with {survivors[i].id}"))
    return [r for k, r in enumerate(survivors) if k not in drop]
