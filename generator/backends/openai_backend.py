"""Any OpenAI-compatible chat API (OpenAI, vLLM's server, `transformers serve`, a metering proxy).

    export OPENAI_BASE_URL=http://localhost:8000/v1 OPENAI_API_KEY=...   # key never logged
    python generate.py ... --backend openai --model gpt-4o-mini --max-cost-usd 2

With a schema the request asks for the JSON-schema response format; every answer is still parsed
and validated here, and an invalid one is retried (a bounded number of times, new seed each time),
because many servers accept `response_format` and ignore it. A server that rejects the field (HTTP
400 naming it) is asked again without it for the rest of the run. Tokens come from the `usage` of
each response and are priced by `generator.pricing`; once `max_cost_usd` is spent, the remaining
prompts come back as `Completion(error="spend cap reached", extra={"spend_cap": True})` without a
request. API errors (402, 429 after the SDK's own retries, 5xx, connection) become error
completions, never exceptions.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel

from core.errors import fail
from generator.backends import Completion, Prompt, Sampling, parse_with_schema
from generator.pricing import cost_usd

SPEND_CAP = "spend cap reached"


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        max_cost_usd: float | None = None,
        price_per_1k: tuple[float, float] | None = None,
        parse_retries: int = 2,
        response_format: str = "json_schema",
        concurrency: int = 4,
        timeout_s: float = 120.0,
    ):
        """Args:
            model: the server's model name.
            base_url: defaults to `OPENAI_BASE_URL` (the SDK default, api.openai.com, without it).
            max_cost_usd: stop sending requests once this much is spent (None: no cap).
            price_per_1k: (input, output) USD per 1k tokens, overriding the price table.
            parse_retries: extra attempts for an answer that does not parse under the schema.
            response_format: "json_schema", "json_object" or "none".
            concurrency: requests in flight at once.
        """
        from openai import OpenAI

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if not base_url:
                fail("openai backend: set OPENAI_API_KEY (and OPENAI_BASE_URL for a server other than OpenAI's)")
            api_key = "not-needed"  # local OpenAI-compatible servers accept any key
        if response_format not in {"json_schema", "json_object", "none"}:
            fail(f"openai backend: response_format must be json_schema, json_object or none, got '{response_format}'")
        self.model_id = model
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=2)
        self.max_cost_usd = max_cost_usd
        self.price_per_1k = price_per_1k
        self.parse_retries = parse_retries
        self.response_format = response_format
        self.concurrency = max(1, concurrency)
        self.cost_usd = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBackend(model={self.model_id!r}, base_url={str(self.client.base_url)!r})"

    # ---- accounting ---------------------------------------------------------------------------
    def _over_cap(self) -> bool:
        return self.max_cost_usd is not None and self.cost_usd >= self.max_cost_usd

    def _account(self, usage: Any) -> tuple[int, int]:
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.requests += 1
            self.cost_usd += cost_usd(self.model_id, prompt, completion, self.price_per_1k)
        return prompt, completion

    # ---- generate -----------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], schema: type[BaseModel] | None, sampling: Sampling) -> list[Completion]:
        jobs = [(i, p) for i, p in enumerate(prompts)]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda job: self._one(job[1], schema, sampling, job[0]), jobs))

    def _request_format(self, schema: type[BaseModel] | None) -> Any:
        if schema is None or self.response_format == "none":
            return None
        if self.response_format == "json_object":
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": True}}

    def _one(self, prompt: Prompt, schema: type[BaseModel] | None, sampling: Sampling, offset: int) -> Completion:
        import openai

        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        total_in = total_out = 0
        last: Completion | None = None
        for attempt in range(1 + (self.parse_retries if schema is not None else 0)):
            if self._over_cap():  # an answer already paid for is kept; an unsent prompt is left for a resume
                return last or Completion(text="", error=SPEND_CAP, finish_reason="error", extra={"spend_cap": True})
            kwargs: dict[str, Any] = {
                "model": self.model_id, "messages": messages, "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature, "seed": sampling.seed + offset + 1000 * attempt,
            }
            if sampling.temperature > 0:
                kwargs["top_p"] = sampling.top_p
            fmt = self._request_format(schema)
            if fmt is not None:
                kwargs["response_format"] = fmt
            try:
                response = self.client.chat.completions.create(**kwargs)
            except openai.BadRequestError as exc:
                if fmt is not None and "response_format" in str(exc):
                    self.response_format = "none"  # this server rejects it: parse-and-retry from now on
                    continue
                return _api_error(exc, total_in, total_out)
            except openai.APIStatusError as exc:
                return _api_error(exc, total_in, total_out)
            except openai.APIError as exc:  # connection errors and timeouts after the SDK's retries
                return Completion(text="", error=f"API error: {type(exc).__name__}: {exc}", finish_reason="error",
                                  prompt_tokens=total_in, completion_tokens=total_out)
            used_in, used_out = self._account(response.usage)
            total_in, total_out = total_in + used_in, total_out + used_out
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
    def score(self, prompts: list[Prompt], choices: list[str]) -> list[list[float]]:
        """log P(first token of each choice) from the server's top logprobs (-inf where absent).

        Exact only when each choice is a single token and the server returns enough top logprobs;
        it is the best a chat API offers, and costs one 1-token request per prompt.
        """
        rows: list[list[float]] = []
        for prompt in prompts:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            if self._over_cap():
                rows.append([-math.inf] * len(choices))
                continue
            response = self.client.chat.completions.create(
                model=self.model_id, messages=messages, max_tokens=1, temperature=0, logprobs=True, top_logprobs=20)
            self._account(response.usage)
            top = {}
            content = (response.choices[0].logprobs.content or []) if response.choices[0].logprobs else []
            if content:
                top = {t.token.strip().casefold(): t.logprob for t in content[0].top_logprobs}
            rows.append([top.get(c.strip().casefold(), -math.inf) for c in choices])
        return rows


def _api_error(exc: Any, prompt_tokens: int, completion_tokens: int) -> Completion:
    message = getattr(exc, "message", str(exc))
    return Completion(text="", error=f"API error {getattr(exc, 'status_code', '?')}: {message}",
                      finish_reason="error", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def _strip_fences(text: str) -> str:
    """Chat models often wrap JSON in ```json fences; the schema check wants the bare object."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()
