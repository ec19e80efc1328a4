"""FAKE vLLM for tests on machines without a GPU: not vLLM. See tests/fakes/fake_vllm/vllm/engine.py."""

from vllm.engine import LLM, LOG, CompletionOutput, Logprob, RequestOutput
from vllm.sampling_params import SamplingParams

IS_FAKE = True
__version__ = "0.0.0+fake"
__all__ = ["IS_FAKE", "LLM", "LOG", "CompletionOutput", "Logprob", "RequestOutput", "SamplingParams"]
