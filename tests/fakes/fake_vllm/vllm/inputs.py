"""FAKE `vllm.inputs`: TokensPrompt is a TypedDict in vLLM, a plain dict here."""

from typing import TypedDict


class TokensPrompt(TypedDict):
    prompt_token_ids: list[int]
