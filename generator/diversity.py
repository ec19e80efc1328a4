"""Diversity of a generation run: distinct attribute combinations and distinct-n of prompts and outputs.

    report = diversity_report(records)   # {"attribute_combinations": ..., "prompts": {...}, "outputs": {...}}

distinct-n is the number of distinct word n-grams divided by the number of n-grams (Li et al., 2016):
1.0 means no n-gram repeats; templates that all read alike push the prompts' value down.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from core.records import Record

_WORD = re.compile(r"\w+", re.UNICODE)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct word n-grams / all word n-grams over `texts` (0.0 when there are none)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        words = _WORD.findall(text.casefold())
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return round(len(seen) / total, 4) if total else 0.0


def diversity_report(records: list[Record]) -> dict[str, Any]:
    """Prompt and output diversity of a run's samples (outputs: parsed samples only)."""
    combos = {tuple(sorted(r.provenance.get("attributes", {}).items())) for r in records}
    prompts = {r.provenance.get("prompt_index"): r.provenance.get("prompt", "") for r in records}
    outputs = [r.text for r in records if r.text and not r.provenance.get("error")]
    return {
        "samples": len(records),
        "attribute_combinations": len(combos),
        "templates": sorted({r.provenance.get("template_id", "") for r in records}),
        "prompts": {f"distinct_{n}": distinct_n(prompts.values(), n) for n in (1, 2, 3)},
        "outputs": {f"distinct_{n}": distinct_n(outputs, n) for n in (1, 2, 3)},
    }


def format_report(report: dict[str, Any]) -> str:
    p, o = report["prompts"], report["outputs"]
    return (f"diversity: {report['attribute_combinations']} distinct attribute combinations in "
            f"{report['samples']} samples, templates {', '.join(report['templates'])}; "
            f"prompts distinct-1/2/3 {p['distinct_1']}/{p['distinct_2']}/{p['distinct_3']}; "
            f"outputs distinct-1/2/3 {o['distinct_1']}/{o['distinct_2']}/{o['distinct_3']}")
