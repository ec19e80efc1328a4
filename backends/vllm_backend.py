"""vLLM in process, with structured outputs and LoRA adapters: the GPU path (`--backend vllm`).

    pip install 'seedloop[vllm]'      # on a CUDA machine
    python generate.py ... --backend vllm --model unsloth/Llama-3.2-1B-Instruct --batch-size 256

    base = VLLMBackend("unsloth/Llama-3.2-1B-Instruct", enable_lora=True, max_lora_rank=16)
    tuned = base.with_adapter("runs/fin/adapter")   # the same engine, a LoRARequest per call

A schema becomes vLLM's structured-output parameter, every prompt gets its own seed, and one engine
per process serves the base model and its LoRA adapters.
Design: docs/generation.md#design-backendsvllm_backendpy
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backends import Completion, Prompt, Sampling, chat, parse_with_schema, row_seeds
from backends.models import resolve_model
from core.errors import fail
from core.optional import require

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's LoRA kernels are built for
_ENGINE: dict[str, Any] = {"model": None, "options": None, "llm": None}
_LORA_IDS: dict[str, int] = {}  # adapter folder -> vLLM's lora_int_id (unique per adapter, >= 1)


def _structured(schema: type[BaseModel]) -> dict[str, Any]:
    """SamplingParams keywords for a JSON schema: the current API first, the one before 0.10.2 otherwise."""
    json_schema = schema.model_json_schema()
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=json_schema)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=json_schema)}


def adapter_rank(adapter: str | Path) -> int:
    """The LoRA rank of a PEFT adapter folder, after checking vLLM can serve it (one clear error if not)."""
    config_path = Path(adapter) / "adapter_config.json"
    if not config_path.is_file():
        fail(f"{adapter}: not a PEFT adapter folder (no adapter_config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("modules_to_save"):
        fail(f"{config_path}: field 'modules_to_save': {config['modules_to_save']} are trained in full, and vLLM's "
             "LoRA serving takes LoRA weights only; train with modules_to_save=[] or use --backend transformers")
    if config.get("use_dora"):
        fail(f"{config_path}: field 'use_dora': vLLM does not serve DoRA adapters; use --backend transformers")
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        fail(f"{config_path}: field 'r': expected a positive LoRA rank, got {rank!r}")
    return rank


def lora_rank_for(rank: int) -> int:
    """The smallest rank vLLM supports that holds `rank` (its `max_lora_rank`)."""
    for supported in LORA_RANKS:
        if supported >= rank:
            return supported
    fail(f"LoRA rank {rank} is above vLLM's largest supported rank {LORA_RANKS[-1]}")


def _compatible(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """An engine built with `have` can serve requests that need `want` (LoRA on and rank big enough)."""
    plain = {k: v for k, v in have.items() if k not in ("enable_lora", "max_lora_rank")}
    if plain != {k: v for k, v in want.items() if k not in ("enable_lora", "max_lora_rank")}:
        return False
    if not want.get("enable_lora"):
        return True
    return bool(have.get("enable_lora")) and have.get("max_lora_rank", 0) >= want.get("max_lora_rank", 0)


def shared_engine(model_path: str, options: dict[str, Any]) -> Any:
    """This process's one `vllm.LLM`: reused when compatible, else the old one is released first."""
    if _ENGINE["llm"] is not None and _ENGINE["model"] == model_path and _compatible(_ENGINE["options"], options):
        return _ENGINE["llm"]
    release_engine()
    LLM = require("vllm").LLM

    _ENGINE.update(model=model_path, options=dict(options), llm=LLM(model=model_path, **options))
    return _ENGINE["llm"]


def release_engine() -> None:
    """Drop the process's engine and give its GPU memory back (before building another one)."""
    if _ENGINE["llm"] is None:
        return
    _ENGINE.update(model=None, options=None, llm=None)
    _LORA_IDS.clear()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, *, adapter: str | Path | None = None, enable_lora: bool = False,
                 max_lora_rank: int | None = None, gpu_memory_utilization: float = 0.85,
                 max_model_len: int = 4096, seed: int = 0, **engine_options: Any):
        """Args:
            model: Hub id, local path or "tiny".
            adapter: a PEFT LoRA adapter folder; every request of this backend carries its LoRARequest.
            enable_lora: build the engine with LoRA support (implied by `adapter`), so that
                `with_adapter` can share it.
            max_lora_rank: the largest adapter rank the engine takes (default: the adapter's, else 16).
            engine_options: further `vllm.LLM` keywords (tensor_parallel_size, dtype, enforce_eager, ...).
        """

        rank = adapter_rank(adapter) if adapter is not None else None
        options: dict[str, Any] = {"gpu_memory_utilization": gpu_memory_utilization,
                                   "max_model_len": max_model_len, "seed": seed, **engine_options}
        if enable_lora or adapter is not None:
            options.update(enable_lora=True, max_lora_rank=lora_rank_for(max(max_lora_rank or 16, rank or 1)))
        self.base_model = model
        self.adapter = None if adapter is None else str(adapter)
        self.model_id = model if adapter is None else f"{model}+{adapter}"
        self.llm = shared_engine(str(resolve_model(model)), options)
        self._options = dict(_ENGINE["options"])  # the engine's own: a reused one may have LoRA on already
        self.tokenizer = self.llm.get_tokenizer()
        self.lora_request = self._lora_request(self.adapter) if self.adapter else None

    def with_adapter(self, adapter: str | Path) -> VLLMBackend:
        """A backend on the same engine whose every request carries `adapter`'s LoRARequest."""
        rank = adapter_rank(adapter)
        if not self._options.get("enable_lora") or self._options["max_lora_rank"] < rank:
            fail(f"{adapter}: rank {rank} needs an engine built with enable_lora=True, max_lora_rank>={rank} "
                 f"(this one: enable_lora={self._options.get('enable_lora', False)}, "
                 f"max_lora_rank={self._options.get('max_lora_rank')})")
        plain = {k: v for k, v in self._options.items() if k not in ("enable_lora", "max_lora_rank")}
        return VLLMBackend(self.base_model, adapter=adapter, enable_lora=True,
                           max_lora_rank=self._options["max_lora_rank"], **plain)

    @staticmethod
    def _lora_request(adapter: str) -> Any:
        from vllm.lora.request import LoRARequest

        path = str(Path(adapter).resolve())
        lora_id = _LORA_IDS.setdefault(path, len(_LORA_IDS) + 1)
        return LoRARequest(f"adapter-{lora_id}", lora_id, path)

    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        return chat.render(self.tokenizer, prompt, add_generation_prompt=True)

    def _tokens(self, prompt: Prompt) -> Any:
        """Token ids of the rendered prompt: vLLM would add a second BOS to text that already has one."""
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"])

    def generate(self, prompts: list[Prompt], schema: type[BaseModel] | None, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        from vllm import SamplingParams

        structured = _structured(schema) if schema else {}
        params = [SamplingParams(temperature=sampling.temperature,
                                 top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
                                 max_tokens=sampling.max_new_tokens, seed=seed, **structured)
                  for seed in row_seeds(sampling, len(prompts), seeds)]
        outputs = self.llm.generate([self._tokens(p) for p in prompts], params, use_tqdm=False,
                                    lora_request=self.lora_request)
        completions = []
        for out in outputs:
            best = out.outputs[0]
            parsed, error = parse_with_schema(best.text, schema)
            finish = best.finish_reason or "stop"
            if error and finish == "length":
                error = f"hit max_new_tokens={sampling.max_new_tokens} before the JSON closed"
            completions.append(Completion(
                text=best.text, parsed=parsed, error=error, finish_reason="error" if error else finish,
                prompt_tokens=len(out.prompt_token_ids or []), completion_tokens=len(best.token_ids),
            ))
        return completions

    def score(self, prompts: list[Prompt], choices: list[str], *, before: str = "",
              after: str = "") -> list[list[float]]:
        """log P(choice | prompt + before): prompt log-probabilities of the choice's tokens, summed.

        The same tokens as `TransformersBackend.score` (`chat.choice_tokens`: the whole text tokenised
        at once, the choice's tokens found by character offsets).
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        requests = []
        for prompt in prompts:
            context = prompt if isinstance(prompt, str) else chat.answer_prefix(self.tokenizer, prompt)
            for ids, n in chat.choice_tokens(self.tokenizer, context, choices, before=before, after=after):
                requests.append((len(ids) - n, TokensPrompt(prompt_token_ids=ids)))
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0)
        outputs = self.llm.generate([r for _, r in requests], params, use_tqdm=False, lora_request=self.lora_request)
        totals = []
        for (start, request), out in zip(requests, outputs, strict=True):
            ids = request["prompt_token_ids"]
            totals.append(sum(out.prompt_logprobs[i][ids[i]].logprob for i in range(start, len(ids))))
        n = len(choices)
        return [totals[j * n : (j + 1) * n] for j in range(len(prompts))]
