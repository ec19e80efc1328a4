"""Any OpenAI-compatible chat API (OpenAI, vLLM's server, `transformers serve`, a metering proxy).

    export OPENAI_BASE_URL=http://localhost:8000/v1 OPENAI_API_KEY=...   # key never logged
    python generate.py ... --backend openai --model gpt-4o-mini --max-cost-usd 2

Every answer under a schema is parsed and validated here (an invalid one is retried); each request's
most it can cost is reserved before it is sent and settled after, so `max_cost_usd` is a hard cap
(across kills and resumes with a `ledger`); failures never raise.
Design: docs/generation.md#design-backendsopenai_backendpy
"""

from __future__ import annotations

import math
import os
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backends import Completion, FailedScores, Prompt, Sampling, parse_with_schema, row_seeds
from backends.pricing import cost_usd, known_price
from core.errors import fail
from core.io import JsonlAppender, read_jsonl
from core.optional import require

SPEND_CAP = "spend cap reached"
TOP_LOGPROBS = 20
TEMPLATE_TOKENS = 16  # chat-template tokens a server adds per message (role headers, separators): generous


class SpendLedger:
    """Durable spend of one run: one fsynced JSON line per reservation and per settlement.

    `{"reserve": id, "usd": most}` before a request, `{"settle": id, "usd": actual}` after it; the
    total spent is every settled amount plus every reservation never settled (a request in flight
    when the process was killed may have been billed, so it counts at its most).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._appender = JsonlAppender(self.path)  # cuts a partial last line left by a kill
        reserved: dict[str, float] = {}
        settled = 0.0
        for row in read_jsonl(self.path, allow_empty=True):
            if "reserve" in row:
                reserved[row["reserve"]] = float(row["usd"])
            elif "settle" in row:
                reserved.pop(row["settle"], None)
                settled += float(row["usd"])
        self.spent_before = settled + sum(reserved.values())

    def reserve(self, request_id: str, usd: float) -> None:
        self._appender.write_batch([{"reserve": request_id, "usd": usd}])

    def settle(self, request_id: str, usd: float) -> None:
        self._appender.write_batch([{"settle": request_id, "usd": usd}])

    def close(self) -> None:
        self._appender.close()


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        max_cost_usd: float | None = None,
        price_per_1k: tuple[float, float] | None = None,
        ledger: str | Path | None = None,
        parse_retries: int = 2,
        response_format: str = "json_schema",
        concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 2,
    ):
        """Args:
            model: the server's model name.
            base_url: defaults to `OPENAI_BASE_URL` (the SDK default, api.openai.com, without it).
            max_cost_usd: the most this run may spend, earlier sessions in `ledger` included (None: no cap).
            price_per_1k: (input, output) USD per 1k tokens, overriding the price table.
            ledger: a JSONL file where every request's spend is recorded as it happens (resumable runs).
            parse_retries: extra attempts for an answer that does not parse under the schema.
            response_format: "json_schema", "json_object" or "none".
            concurrency: requests in flight at once.
            max_retries: the SDK's own retries (429, 5xx, connection) before a row records the error.
        """
        OpenAI = require("openai").OpenAI

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if not base_url:
                fail("openai backend: set OPENAI_API_KEY (and OPENAI_BASE_URL for a server other than OpenAI's)")
            api_key = "not-needed"  # local OpenAI-compatible servers accept any key
        if response_format not in {"json_schema", "json_object", "none"}:
            fail(f"openai backend: response_format must be json_schema, json_object or none, got '{response_format}'")
        if max_cost_usd is not None and price_per_1k is None and known_price(model) is None:
            fail(f"openai backend: model '{model}' has no price in backends/pricing.py, so --max-cost-usd "
                 "cannot be enforced; pass --price-per-1k IN,OUT (USD per 1k tokens; 0,0 for a free local server)")
        self.model_id = model
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries)
        self.max_cost_usd = max_cost_usd
        self.price_per_1k = price_per_1k
        self.parse_retries = parse_retries
        self.response_format = response_format
        self.concurrency = max(1, concurrency)
        self.ledger = SpendLedger(ledger) if ledger is not None else None
        self.spent_before = self.ledger.spent_before if self.ledger else 0.0
        self.cost_usd = 0.0  # settled in this session (plus unsettled reservations of failed transports)
        self.reserved_usd = 0.0  # in flight now
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests = 0
        # How each settled request's cost is known: server (usage.cost), price_table, price_override,
        # unpriced (a model missing from the table, no cost reported: counted as 0, said so), refused, unsettled.
        self.cost_sources: dict[str, int] = {}
        self._lock = threading.Lock()
        self._no_logprobs: str | None = None  # set once the server shows it gives none

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBackend(model={self.model_id!r}, base_url={str(self.client.base_url)!r})"

    @property
    def total_spent_usd(self) -> float:
        """Everything this run has spent or may have spent, earlier sessions included."""
        return self.spent_before + self.cost_usd + self.reserved_usd

    # ---- accounting ---------------------------------------------------------------------------
    @property
    def price_source(self) -> str:
        """Where a request's price comes from when the server reports no cost."""
        if self.price_per_1k is not None:
            return "price_override"
        return "price_table" if known_price(self.model_id) is not None else "unpriced"

    def most_cost_usd(self, prompt: Prompt, max_new_tokens: int) -> float:
        """The most one request for `prompt` can cost (what is reserved under the cap before it is sent)."""
        return self._most(_messages(prompt), max_new_tokens)

    def _most(self, messages: list[dict[str, str]], max_tokens: int) -> float:
        """An upper bound on one request's cost: a token is at least one byte of text."""
        prompt = sum(len(str(m.get("content", "")).encode()) + TEMPLATE_TOKENS for m in messages) + TEMPLATE_TOKENS
        return cost_usd(self.model_id, prompt, max_tokens, self.price_per_1k)

    def _reserve(self, most: float) -> str | None:
        """A request id when `most` still fits under the cap (recorded before sending), else None."""
        with self._lock:
            if self.max_cost_usd is not None and self.total_spent_usd + most > self.max_cost_usd + 1e-12:
                return None
            self.reserved_usd += most
            request_id = uuid.uuid4().hex[:12]
            if self.ledger:
                self.ledger.reserve(request_id, most)
        return request_id

    def _settle(self, request_id: str, most: float, usage: Any = None, billed: bool = True) -> tuple[int, int]:
        """Replace the reservation by the actual cost (0 when the server refused the request): the cost the
        server reports in `usage.cost` where it does, else `usage`'s tokens at the table's price."""
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        reported = _reported_cost(usage)
        if reported is not None:
            actual, source = reported, "server"
        elif usage is not None:
            actual = cost_usd(self.model_id, prompt, completion, self.price_per_1k)
            source = self.price_source
        else:  # no usage: refused (not billed), or lost in transport (may be billed: count the most)
            actual, source = (most, "unsettled") if billed else (0.0, "refused")
        with self._lock:
            self.reserved_usd -= most
            self.cost_usd += actual
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.requests += 1
            self.cost_sources[source] = self.cost_sources.get(source, 0) + 1
            if self.ledger:
                self.ledger.settle(request_id, actual)
        return prompt, completion

    def _send(self, messages: list[dict[str, str]], max_tokens: int, **kwargs: Any) -> tuple[Any, str | None]:
        """(response, None) or (None, reason): one request under the cap, its spend recorded either way."""
        openai = require("openai")

        most = self._most(messages, max_tokens)
        request_id = self._reserve(most)
        if request_id is None:
            return None, SPEND_CAP
        try:
            response = self.client.chat.completions.create(
                model=self.model_id, messages=messages, max_tokens=max_tokens, **kwargs)
        except openai.APIStatusError as exc:  # the server answered with an error: nothing billed
            self._settle(request_id, most, billed=False)
            return None, _status_reason(exc)
        except openai.APIError as exc:  # connection errors and timeouts after the SDK's retries
            self._settle(request_id, most, billed=True)
            return None, f"API error: {type(exc).__name__}: {exc}"
        except Exception as exc:  # a malformed answer the SDK could not read: a row's reason, not a crash
            self._settle(request_id, most, billed=True)
            return None, f"API error: {type(exc).__name__}: {exc}"
        self._settle(request_id, most, getattr(response, "usage", None), billed=True)
        return response, None

    # ---- generate -----------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], schema: type[BaseModel] | None, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        jobs = list(zip(prompts, row_seeds(sampling, len(prompts), seeds), strict=True))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda job: self._one(job[0], schema, sampling, job[1]), jobs))

    def _request_format(self, schema: type[BaseModel] | None) -> Any:
        if schema is None or self.response_format == "none":
            return None
        if self.response_format == "json_object":
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": True}}

    def _one(self, prompt: Prompt, schema: type[BaseModel] | None, sampling: Sampling, seed: int) -> Completion:
        messages = _messages(prompt)
        total_in = total_out = 0
        last: Completion | None = None
        for attempt in range(1 + (self.parse_retries if schema is not None else 0)):
            kwargs: dict[str, Any] = {"temperature": sampling.temperature, "seed": _attempt_seed(seed, attempt)}
            if sampling.temperature > 0:
                kwargs["top_p"] = sampling.top_p
            fmt = self._request_format(schema)
            if fmt is not None:
                kwargs["response_format"] = fmt
            response, reason = self._send(messages, sampling.max_new_tokens, **kwargs)
            if reason == SPEND_CAP:  # an answer already paid for is kept; an unsent prompt is left for a resume
                return last or Completion(text="", error=SPEND_CAP, finish_reason="error", extra={"spend_cap": True})
            if reason is not None:
                if fmt is not None and reason.startswith("API error 400") and "response_format" in reason:
                    self.response_format = "none"  # this server rejects it: parse-and-retry from now on
                    continue
                return Completion(text="", error=reason, finish_reason="error", prompt_tokens=total_in,
                                  completion_tokens=total_out, extra={"attempts": attempt + 1})
            usage = getattr(response, "usage", None)
            total_in += int(getattr(usage, "prompt_tokens", 0) or 0)
            total_out += int(getattr(usage, "completion_tokens", 0) or 0)
            if not getattr(response, "choices", None):
                last = Completion(text="", error="API answer without choices", finish_reason="error",
                                  prompt_tokens=total_in, completion_tokens=total_out, extra={"attempts": attempt + 1})
                continue
            choice = response.choices[0]
            text = choice.message.content or ""
            parsed, error = parse_with_schema(_strip_fences(text), schema)
            last = Completion(text=text, parsed=parsed, error=error,
                              finish_reason="error" if error else (choice.finish_reason or "stop"),
                              prompt_tokens=total_in, completion_tokens=total_out,
                              extra={"attempts": attempt + 1})
            if error is None:
                return last
        return last or Completion(text="", error="no attempt was made", finish_reason="error")

    # ---- score --------------------------------------------------------------------------------
    def score(self, prompts: list[Prompt], choices: list[str], *, before: str = "",
              after: str = "") -> list[list[float]]:
        """log P(first token of each choice) from the server's top logprobs (-inf where absent).

        Exact only when each choice is a single token and the server returns enough top logprobs;
        it is the best a chat API offers, and costs one 1-token request per prompt. A row that
        cannot be scored is a `FailedScores` row (NaN, with the reason), never an exception: so is
        every row when the choices follow a fixed answer start (`before`), which a chat API cannot
        be made to continue from. `after` only shapes tokenisation, which the server does: ignored.
        """
        if before:
            reason = f"a chat API scores an answer's first token only, not a choice after {before!r}"
            return [FailedScores(len(choices), reason) for _ in prompts]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda prompt: self._score_one(prompt, choices), prompts))

    def _score_one(self, prompt: Prompt, choices: list[str]) -> list[float]:
        if self._no_logprobs:  # the server has shown it returns none: do not pay to learn it again
            return FailedScores(len(choices), self._no_logprobs)
        response, reason = self._send(_messages(prompt), 1, temperature=0, logprobs=True, top_logprobs=TOP_LOGPROBS)
        if reason is not None:
            if reason.startswith("API error 400") and "logprobs" in reason:
                self._no_logprobs = f"server does not support logprobs ({reason})"
                reason = self._no_logprobs
            return FailedScores(len(choices), reason)
        choice = response.choices[0] if getattr(response, "choices", None) else None
        content = (choice.logprobs.content or []) if choice is not None and choice.logprobs else []
        if not content or not content[0].top_logprobs:
            self._no_logprobs = "server returned no logprobs"
            return FailedScores(len(choices), self._no_logprobs)
        top = {t.token.strip().casefold(): t.logprob for t in content[0].top_logprobs}
        row = [float(top.get(c.strip().casefold(), -math.inf)) for c in choices]
        if not any(math.isfinite(x) for x in row):
            return FailedScores(len(choices), f"no choice among the top {TOP_LOGPROBS} first tokens")
        return row

    def close(self) -> None:
        if self.ledger:
            self.ledger.close()


def _messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def _reported_cost(usage: Any) -> float | None:
    """The request's cost in USD where the server reports it in `usage.cost` (OpenRouter's usage
    accounting; the SDK keeps unknown usage fields), else None."""
    cost = getattr(usage, "cost", None) if usage is not None else None
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost) or cost < 0:
        return None
    return float(cost)


def _attempt_seed(seed: int, attempt: int) -> int:
    """The row's own seed first; a retry gets a new one derived from it (not another row's seed)."""
    return seed if attempt == 0 else random.Random(f"{seed}:retry:{attempt}").getrandbits(31)


def _status_reason(exc: Any) -> str:
    """"API error 402: <the server's own message>" (the SDK's message repeats the code and may hold the body)."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else None
    return f"API error {getattr(exc, 'status_code', '?')}: {message or getattr(exc, 'message', None) or exc}"


def _strip_fences(text: str) -> str:
    """Chat models often wrap JSON in ```json fences; the schema check wants the bare object."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()
