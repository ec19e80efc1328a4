"""The vLLM backend on a CUDA machine with vLLM installed (`pip install 'seedloop[vllm]'`); skipped elsewhere."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_vllm_constrained_generation_parses_and_scores():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    pytest.importorskip("vllm")
    from core.tasks import load_task
    from generator.backends import Sampling, get_backend

    task = load_task("fin_sentiment")
    backend = get_backend("vllm", model="tiny", gpu_memory_utilization=0.3, max_model_len=2048)
    prompts = [[{"role": "user", "content": f"Write financial news number {i} as JSON."}] for i in range(4)]
    out = backend.generate(prompts, task.generation_schema(), Sampling(temperature=0.8, max_new_tokens=384))
    assert all(c.ok and c.parsed["label"] in task.label_names for c in out), [c.error for c in out]
    scores = backend.score(prompts[:2], task.label_names)
    assert len(scores) == 2 and all(len(row) == 3 and all(s <= 0 for s in row) for row in scores)
