"""A FAKE of vLLM's OpenAI-compatible server: the metering proxy (tests/fakes/metering_proxy.py) answering
with a real local model under the request's `response_format` JSON schema.

vLLM's server honours `{"type": "json_schema", ...}` with guided decoding, but needs a GPU; `transformers
serve` runs here but ignores `response_format` (tests/backends/test_openai_backend.py). This stands in for
the first: the HTTP server is ours, the answers are the model's own (our transformers backend, constrained
by Outlines to the schema the client sent), and `usage` counts the real tokens, billed at `price_per_1k`.

    with GuidedServer(model="tiny") as server:          # OpenAI(base_url=server.base_url, api_key="x")
"""

from __future__ import annotations

import threading
from typing import Any

from backends import Sampling
from tests.fakes.metering_proxy import MeteringProxy


class _Schema:
    """The request's JSON schema where our backend expects a pydantic class (it only asks for the schema)."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema

    def model_json_schema(self) -> dict[str, Any]:
        return self.schema


class GuidedServer(MeteringProxy):
    def __init__(self, model: str = "tiny", **kwargs: Any):
        from backends import get_backend

        super().__init__("nologprobs", **kwargs)
        self.backend = get_backend("transformers", model=model, device="cpu")
        self._model_lock = threading.Lock()
        self._usage = threading.local()

    def content(self, body: dict[str, Any]) -> str:
        fmt = body.get("response_format") or {}
        sampling = Sampling(temperature=float(body.get("temperature") or 0.0), max_new_tokens=int(body["max_tokens"]),
                            seed=int(body.get("seed") or 0))
        with self._model_lock:  # one generation at a time on the one model
            processor = None
            if fmt.get("type") == "json_schema":
                processor = self.backend.logits_processor(_Schema(fmt["json_schema"]["schema"]))
            done = self.backend._generate_free([body["messages"]], sampling, processor=processor,
                                               seeds=[sampling.seed])[0]
        self._usage.value = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                             "total_tokens": done.prompt_tokens + done.completion_tokens}
        return done.text

    def usage_of(self, body: dict[str, Any], content: str) -> dict[str, int]:
        return self._usage.value
