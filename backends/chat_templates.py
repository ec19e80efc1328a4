"""Our chat templates, written from each family's documented format: `backends/zoo/templates/<family>.jinja`.

    text = template("gemma")     # Gemma's turn format: the zoo's tiny-gemma and the packaged gemma3-270m
"""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "zoo" / "templates"


def template(family: str) -> str:
    """Our chat template of `family` (written from the family's documented format)."""
    return (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
