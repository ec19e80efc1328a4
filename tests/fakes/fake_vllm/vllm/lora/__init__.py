"""FAKE `vllm.lora`."""
