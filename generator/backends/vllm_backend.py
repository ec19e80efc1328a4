"""vLLM in process, with guided (structured) decoding: the GPU path (`--backend vllm`).

    pip install 'seedloop[vllm]'      # on a CUDA machine
    python generate.py ... --backend vllm --model unsloth/Llama-3.2-1B-Instruct --batch-size 256

A schema becomes vLLM's own structured-output parameter (JSON schema; vLLM picks its guided-decoding
engine, xgrammar or Outlines), so every finished output parses; a length cut-off is still reported
as an error row. `score` sums the prompt log-probabilities vLLM returns for prompt + choice.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from generator.backends import Completion, Prompt, Sampling, parse_with_schema


def _structured(schema: type[BaseModel]) -> dict[str, Any]:
    """SamplingParams keywords for a JSON schema, across vLLM's two spellings of the option."""
    json_schema = schema.model_json_schema()
    try:  # vLLM >= 0.10.2
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=json_schema)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=json_schema)}


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, *, gpu_memory_utilization: float = 0.85, max_model_len: int = 4096,
                 seed: int = 0, **engine_options: Any):
        from vllm import LLM

        from core.models import resolve_model

        self.model_id = model
        self.llm = LLM(model=str(resolve_model(model)), gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, seed=seed, **engine_options)
        self.tokenizer = self.llm.get_tokenizer()

    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[Prompt], schema: type[BaseModel] | None, sampling: Sampling) -> list[Completion]:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            max_tokens=sampling.max_new_tokens, seed=sampling.seed, **(_structured(schema) if schema else {}),
        )
        outputs = self.llm.generate([self.render(p) for p in prompts], params, use_tqdm=False)
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

    def score(self, prompts: list[Prompt], choices: list[str]) -> list[list[float]]:
        """log P(choice | prompt): prompt log-probabilities of the choice's tokens, summed."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        texts = [self.render(p) for p in prompts]
        choice_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        requests = []
        for text in texts:
            prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            requests += [(len(prompt_ids), TokensPrompt(prompt_token_ids=prompt_ids + ids)) for ids in choice_ids]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0)
        outputs = self.llm.generate([r for _, r in requests], params, use_tqdm=False)
        totals = []
        for (start, request), out in zip(requests, outputs, strict=True):
            ids = request["prompt_token_ids"]
            totals.append(sum(out.prompt_logprobs[i][ids[i]].logprob for i in range(start, len(ids))))
        n = len(choices)
        return [totals[j * n : (j + 1) * n] for j in range(len(texts))]
