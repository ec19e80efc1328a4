"""The vLLM backend on a CUDA machine with vLLM installed (`pip install 'seedloop[vllm]'`); skipped elsewhere.

The same checks run on every machine against the fake vLLM in test_vllm_fake.py."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def real_vllm():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    vllm = pytest.importorskip("vllm")
    if getattr(vllm, "IS_FAKE", False):
        pytest.skip("the fake vllm is on sys.path")
    return vllm


def test_vllm_constrained_generation_parses_per_sample_seeds_and_scores(real_vllm):
    from backends import Sampling, get_backend
    from core.tasks import load_task

    task = load_task("fin_sentiment")
    backend = get_backend("vllm", model="tiny", gpu_memory_utilization=0.3, max_model_len=2048)
    prompts = [[{"role": "user", "content": f"Write financial news number {i} as JSON."}] for i in range(4)]
    sampling = Sampling(temperature=0.8, max_new_tokens=384)
    out = backend.generate(prompts, task.generation_schema(), sampling, seeds=[1, 2, 3, 4])
    assert all(c.ok and c.parsed["label"] in task.label_names for c in out), [c.error for c in out]
    again = backend.generate(prompts[1:2], task.generation_schema(), sampling, seeds=[2])
    assert again[0].text == out[1].text  # a sample depends on its own seed, not on its batch
    scores = backend.score(prompts[:2], task.label_names)
    assert len(scores) == 2 and all(len(row) == 3 and all(s <= 0 for s in row) for row in scores)


def test_vllm_serves_base_and_tuned_from_one_engine(real_vllm, tmp_path):
    from peft import LoraConfig, get_peft_model

    from backends import get_backend
    from backends.models import load_model

    model, _ = load_model("tiny", device="cpu")
    get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                                     init_lora_weights=False)).save_pretrained(tmp_path)
    base = get_backend("vllm", model="tiny", enable_lora=True, max_lora_rank=8, gpu_memory_utilization=0.3,
                       max_model_len=2048)
    tuned = base.with_adapter(tmp_path)
    assert tuned.llm is base.llm
    prompts = [[{"role": "user", "content": "Is this news positive?"}]]
    assert base.score(prompts, ["positive", "negative"]) != tuned.score(prompts, ["positive", "negative"])
