"""A FAKE paraphrasing API: the metering proxy (tests/fakes/metering_proxy.py) answering run.py's
paraphrase requests with a near-copy of the ticket: two words of it swapped. Not an LLM: a
stand-in for an OpenAI-compatible server (which cannot be reached here) that answers every
request with a deterministic function of it, reports token usage of about 4 characters a token,
and keeps its own bill at the price table's rate for the model asked for.

    with ParaphraseServer() as server:                    # or ParaphraseServer(pay_for=10): then HTTP 402
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "fake"}

    python -m tests.fakes.paraphrase_server --port 8123 [--pay-for N]      # standalone (README measurements)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
from typing import Any

from backends.pricing import known_price
from tests.fakes.metering_proxy import MeteringProxy

TICKET_LINE = re.compile(r"^Ticket: (.*)$", re.M)


def swap_two_words(text: str, seed: int) -> str:
    """`text` with two words that are not next to each other swapped (seeded), or with 'please' added."""
    words = text.split()
    if len(words) < 4:
        return f"{text} please"
    rng = random.Random(f"{seed}\x1f{text}")
    i = rng.randrange(0, len(words) - 2)
    j = rng.randrange(i + 2, len(words))
    words[i], words[j] = words[j], words[i]
    return " ".join(words)


class ParaphraseServer(MeteringProxy):
    """Answers `{"ticket": <the prompt's ticket with two words swapped>}`; bills at `model`'s list price."""

    def __init__(self, *, port: int = 0, pay_for: int | None = None, model: str = "gpt-4o-mini",
                 delay_s: float = 0.0):
        super().__init__("nologprobs", port=port, price_per_1k=known_price(model) or (0.0, 0.0), delay_s=delay_s,
                         pay_for=pay_for)

    def content(self, body: dict[str, Any]) -> str:
        prompt = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
                      "")
        found = TICKET_LINE.search(prompt)
        ticket = found.group(1).strip() if found else prompt.strip()
        return json.dumps({"ticket": swap_two_words(ticket, int(body.get("seed") or 0))})

    def usage_of(self, body: dict[str, Any], content: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", ""))) // 4 + 8 for m in body.get("messages", []))
        completion = len(content) // 4 + 1
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def main() -> None:
    parser = argparse.ArgumentParser(description="FAKE paraphrasing API (tests and README measurements only)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--pay-for", type=int, default=None, help="answer this many requests, then HTTP 402")
    args = parser.parse_args()
    with ParaphraseServer(port=args.port, pay_for=args.pay_for) as server:
        print(f"fake paraphrasing API at {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
