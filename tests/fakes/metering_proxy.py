"""A FAKE metering proxy: a small OpenAI-compatible HTTP server on loopback, for the failures a paid
API produces and a test cannot buy: HTTP 402 (budget exhausted), 429 (rate limited), 500, and chat
completions without logprobs. Not an LLM: its answers are a fixed JSON object of the fin_sentiment
shape, with fixed `usage` token counts, and it keeps its own bill (what it answered, priced per 1k
tokens) so a test can check a client's spend against the server's side of the ledger; with
`report_cost=True` each answer's `usage.cost` reports that bill, as a server with usage accounting does.

    with MeteringProxy(mode="402") as proxy:            # or "429", "500", "nologprobs"
        client = OpenAI(base_url=proxy.base_url, api_key="x")

    python -m tests.fakes.metering_proxy --mode nologprobs --port 8099   # standalone
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("402", "429", "500", "nologprobs")
ANSWER = {"text": "Shares of the regional bank rose after profit beat forecasts.", "label": "positive"}


class MeteringProxy:
    """The server, run in a daemon thread; `requests` holds every request body, `billed_usd` the bill."""

    def __init__(self, mode: str = "nologprobs", *, port: int = 0, prompt_tokens: int = 100,
                 completion_tokens: int = 50, price_per_1k: tuple[float, float] = (1.0, 1.0), delay_s: float = 0.0,
                 pay_for: int | None = None, report_cost: bool = False):
        """`pay_for`: answer that many requests, then HTTP 402 for every later one (a budget spent halfway).
        `report_cost`: each answer's `usage` also says what it was billed, in `cost` (as OpenRouter's does)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode, self.delay_s, self.pay_for, self.report_cost = mode, delay_s, pay_for, report_cost
        self.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}
        self.price_per_1k = price_per_1k
        self.cost_per_answer = prompt_tokens / 1000 * price_per_1k[0] + completion_tokens / 1000 * price_per_1k[1]
        self.requests: list[dict[str, Any]] = []
        self.answered = 0
        self.billed: list[float] = []  # the price of each answer, in the order answered
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def billed_usd(self) -> float:
        return sum(self.billed)

    def content(self, body: dict[str, Any]) -> str:
        """The assistant message for a request (subclasses answer something else)."""
        return json.dumps(ANSWER)

    def usage_of(self, body: dict[str, Any], content: str) -> dict[str, int]:
        return self.usage

    def __enter__(self) -> MeteringProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with proxy._lock:
                    proxy.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                with proxy._lock:  # counted as answered here, so parallel requests never pass `pay_for`
                    spent = proxy.pay_for is not None and proxy.answered >= proxy.pay_for
                    if proxy.mode not in ("402", "429", "500") and not spent:
                        proxy.answered += 1
                if proxy.mode == "402" or spent:
                    return self._send(402, {"error": {"message": "Payment required: the key's budget is spent",
                                                      "type": "insufficient_quota", "code": "insufficient_quota"}})
                if proxy.mode == "429":
                    return self._send(429, {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                                      {"retry-after-ms": "5"})
                if proxy.mode == "500":
                    return self._send(500, {"error": {"message": "upstream failed", "type": "server_error"}})
                time.sleep(proxy.delay_s)
                content = proxy.content(body)
                usage = dict(proxy.usage_of(body, content))
                price_in, price_out = proxy.price_per_1k
                bill = usage["prompt_tokens"] / 1000 * price_in + usage["completion_tokens"] / 1000 * price_out
                with proxy._lock:
                    proxy.billed.append(bill)
                if proxy.report_cost:
                    usage["cost"] = bill
                self._send(200, {
                    "id": f"chatcmpl-{len(proxy.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": usage,
                })

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="FAKE metering proxy (tests only)")
    parser.add_argument("--mode", choices=MODES, default="nologprobs")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    with MeteringProxy(args.mode, port=args.port) as proxy:
        print(f"fake metering proxy ({args.mode}) at {proxy.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
