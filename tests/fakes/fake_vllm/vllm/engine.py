"""FAKE `vllm.LLM`: records every call and answers with plausible, deterministic outputs. Not vLLM.

vLLM needs a CUDA GPU, so the tests put this package first on `sys.path` to run our vLLM backend,
the evaluator and the demo on a CPU. It keeps the parts of vLLM's contract our code can get wrong:

- `LLM(**kwargs)` takes only engine argument names (an unknown one is a TypeError, as in vLLM);
  the model must be a local folder; its tokenizer is the real one (`get_tokenizer`).
- `generate(prompts, sampling_params, lora_request=...)` takes one SamplingParams or one per
  prompt, one LoRARequest or one per prompt; text prompts are tokenised with special tokens
  (vLLM does that too), TokensPrompt dicts are used as given.
- LoRA: a request without `enable_lora=True` is a ValueError; the adapter's `adapter_config.json`
  is checked the way vLLM's PEFTHelper does (rank above `max_lora_rank`, `modules_to_save`, DoRA);
  one `lora_int_id` for two different adapter folders is an error (vLLM would silently serve the
  first one's weights).
- Outputs: with `structured_outputs=StructuredOutputsParams(json=schema)` a JSON instance of the
  schema; otherwise words. A sample is a function of (prompt tokens, seed, adapter) only; greedy
  (temperature 0) ignores the seed. Output longer than `max_tokens` is cut, finish reason "length".
  `prompt_logprobs` gives a `{token_id: Logprob}` per prompt position (None first), a function
  of (prompt tokens, adapter), so base and tuned score differently.

Every call is appended to `LOG` and, when `FAKE_VLLM_LOG` names a file, to that file as JSON lines
(so a test can read what a subprocess gave the engine).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINE_ARGS = frozenset({
    "tokenizer", "seed", "gpu_memory_utilization", "max_model_len", "enable_lora", "max_lora_rank", "max_loras",
    "max_cpu_loras", "dtype", "tensor_parallel_size", "enforce_eager", "trust_remote_code", "quantization",
    "enable_prefix_caching", "swap_space", "download_dir",
})
LOG: list[dict[str, Any]] = []
WORDS = ("shares", "rose", "fell", "profit", "quarter", "revenue", "bank", "market", "guidance", "steady",
         "loss", "growth", "investors", "dividend", "forecast", "costs", "margin", "demand", "stock", "outlook")
_engines = [0]


def _record(event: dict[str, Any]) -> None:
    LOG.append(event)
    path = os.environ.get("FAKE_VLLM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(event, default=str) + "\n")


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: Any = None
    finish_reason: str | None = "stop"


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True


class LLM:
    """FAKE vllm.LLM (see the module docstring)."""

    def __init__(self, model: str, **kwargs: Any):
        for name in kwargs:
            if name not in ENGINE_ARGS:
                raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument '{name}'")
        if not Path(model).is_dir():
            raise OSError(f"fake vllm: {model} is not a local model folder (nothing is downloaded here)")
        from transformers import AutoTokenizer

        _engines[0] += 1
        self.engine_id = _engines[0]
        self.model = model
        self.options = kwargs
        self.enable_lora = bool(kwargs.get("enable_lora", False))
        self.max_lora_rank = int(kwargs.get("max_lora_rank") or 16)
        self.seed = int(kwargs.get("seed") or 0)
        self._tokenizer = AutoTokenizer.from_pretrained(kwargs.get("tokenizer") or model)
        self._loras: dict[int, str] = {}
        self._unseeded = random.Random(self.seed)
        _record({"event": "init", "engine": self.engine_id, "model": model, **kwargs})

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    # ---- checks vLLM makes --------------------------------------------------------------------
    def _check_lora(self, lora: Any) -> None:
        if not self.enable_lora:
            raise ValueError("LoRA is not enabled! Please set `enable_lora=True` when creating the LLM.")
        known = self._loras.setdefault(lora.lora_int_id, lora.lora_path)
        if known != lora.lora_path:
            raise ValueError(f"fake vllm: lora_int_id {lora.lora_int_id} was {known}, now {lora.lora_path}")
        config_path = Path(lora.lora_path) / "adapter_config.json"
        if not config_path.is_file():
            raise ValueError(f"No adapter found for {lora.lora_path}")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        errors = []
        if config.get("modules_to_save"):
            errors.append("vLLM only supports modules_to_save being None.")
        if config.get("use_dora"):
            errors.append("vLLM does not yet support DoRA.")
        if int(config.get("r", 0)) > self.max_lora_rank:
            errors.append(f"LoRA rank {config.get('r')} is greater than max_lora_rank {self.max_lora_rank}.")
        if errors:
            raise ValueError(" ".join(errors))

    # ---- generate -----------------------------------------------------------------------------
    def generate(self, prompts: Any, sampling_params: Any = None, *, use_tqdm: bool = True,
                 lora_request: Any = None) -> list[RequestOutput]:
        from vllm.sampling_params import SamplingParams

        if isinstance(prompts, str | dict):
            prompts = [prompts]
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params or SamplingParams()] * len(prompts)
        loras = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
        if len(params) != len(prompts) or len(loras) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params/lora_request must be the same.")
        for lora in {id(x): x for x in loras if x is not None}.values():
            self._check_lora(lora)
        outputs = [self._one(i, p, sp, lora) for i, (p, sp, lora) in enumerate(zip(prompts, params, loras, strict=True))]
        _record({"event": "generate", "engine": self.engine_id, "n": len(prompts),
                 "prompt_kind": sorted({"tokens" if isinstance(p, dict) else "text" for p in prompts}),
                 "seeds": [sp.seed for sp in params], "temperature": sorted({sp.temperature for sp in params}),
                 "structured": sorted({sp.structured_outputs is not None for sp in params}),
                 "prompt_logprobs": sorted({sp.prompt_logprobs is not None for sp in params}),
                 "lora": sorted({x.lora_path if x else "" for x in loras}),
                 "double_bos": sum(1 for o in outputs if _double_bos(o.prompt_token_ids, self._tokenizer))})
        return outputs

    def _one(self, index: int, prompt: Any, sp: Any, lora: Any) -> RequestOutput:
        if isinstance(prompt, dict):
            ids, text = list(prompt["prompt_token_ids"]), None
        else:
            ids, text = self._tokenizer(prompt)["input_ids"], prompt  # vLLM adds special tokens to text
        adapter = lora.lora_path if lora else ""
        if sp.temperature == 0:
            rng = random.Random(f"greedy|{ids}|{adapter}")
        elif sp.seed is None:
            rng = random.Random(self._unseeded.random())
        else:
            rng = random.Random(f"{sp.seed}|{ids}|{adapter}|{sp.temperature}|{sp.top_p}")
        schema = sp.structured_outputs.json if sp.structured_outputs is not None else None
        if isinstance(schema, str):
            schema = json.loads(schema)
        out_text = (json.dumps(_instance(schema, schema, rng), ensure_ascii=False, separators=(",", ":"))
                    if schema is not None else " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))))
        tokens = self._tokenizer(out_text, add_special_tokens=False)["input_ids"]
        finish = "stop"
        if sp.max_tokens is not None and len(tokens) > sp.max_tokens:
            tokens, finish = tokens[: sp.max_tokens], "length"
            out_text = self._tokenizer.decode(tokens)
        prompt_logprobs = None
        if sp.prompt_logprobs is not None:
            scorer = random.Random(f"score|{ids}|{adapter}")
            prompt_logprobs = [None] + [{t: Logprob(-scorer.uniform(0.05, 6.0), rank=1)} for t in ids[1:]]
        return RequestOutput(request_id=str(index), prompt=text, prompt_token_ids=ids, prompt_logprobs=prompt_logprobs,
                             outputs=[CompletionOutput(0, out_text, tokens, finish_reason=finish)])


def _double_bos(ids: list[int], tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos


def _instance(node: dict[str, Any], root: dict[str, Any], rng: random.Random) -> Any:
    """A random JSON value valid under a (pydantic-style) JSON schema node."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _instance(root.get("$defs", {})[name], root, rng)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return rng.choice(node["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            return _instance(node[key][0], root, rng)
    kind = node.get("type", "object")
    if kind == "object":
        return {name: _instance(sub, root, rng) for name, sub in node.get("properties", {}).items()}
    if kind == "array":
        return [_instance(node.get("items", {}), root, rng) for _ in range(max(1, node.get("minItems", 1)))]
    if kind == "integer":
        return rng.randint(int(node.get("minimum", 0)), int(node.get("maximum", 100)))
    if kind == "number":
        return round(rng.uniform(float(node.get("minimum", 0)), float(node.get("maximum", 100))), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    low, high = int(node.get("minLength", 0)), int(node.get("maxLength", 120))
    text = ""
    while len(text) < low or (len(text) < min(high, 60) and rng.random() < 0.8):
        text = f"{text} {rng.choice(WORDS)}".strip()
    return text[:high]
