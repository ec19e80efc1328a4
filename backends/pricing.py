"""The one price table: US dollars per 1,000 tokens (input, output) for API models.

    cost_usd("gpt-4o-mini", prompt_tokens=1200, completion_tokens=300)

A model missing from the table has no price (`known_price` is None): the OpenAI-compatible backend
refuses to run it under a spend cap unless a price is given (`--price-per-1k IN,OUT`; `0,0` for a
local vLLM or `transformers serve` endpoint), because counting it as free would make the cap lie.
Prices are list prices on `PRICES_AS_OF`, the day the table was written; every run's manifest records
that date beside its cost (`backends.metering`). Where the server reports a request's cost itself
(`usage.cost`, as OpenRouter does), that number is used instead of the table.
"""

from __future__ import annotations

PRICES_AS_OF = "2026-11-22"  # the day the table below was written (commit 79c34a6)

# model id (or its prefix before a date suffix) -> (USD per 1k input tokens, USD per 1k output tokens)
PRICES_PER_1K: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.00015, 0.0006),
    "gpt-4o": (0.0025, 0.01),
    "gpt-4.1-mini": (0.0004, 0.0016),
    "gpt-4.1-nano": (0.0001, 0.0004),
    "gpt-4.1": (0.002, 0.008),
    "gpt-3.5-turbo": (0.0005, 0.0015),
}


def known_price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1k tokens of the longest matching table entry, or None when unlisted."""
    matches = [key for key in PRICES_PER_1K if model == key or model.startswith(key + "-")]
    return PRICES_PER_1K[max(matches, key=len)] if matches else None


def price_for(model: str, override: tuple[float, float] | None = None) -> tuple[float, float]:
    """(input, output) USD per 1k tokens: the override, else the table, else 0 (callers with a cap refuse)."""
    if override is not None:
        return override
    return known_price(model) or (0.0, 0.0)


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int,
             override: tuple[float, float] | None = None) -> float:
    price_in, price_out = price_for(model, override)
    return prompt_tokens / 1000 * price_in + completion_tokens / 1000 * price_out
