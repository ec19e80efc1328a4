"""The vLLM backend and the evaluator's vLLM path against tests/fakes/fake_vllm (a FAKE vLLM: vLLM needs a
CUDA GPU). The fake records what our code gives the engine and enforces vLLM's argument names and LoRA
checks; `test_vllm_backend.py` runs the real vLLM where a GPU and vLLM are installed."""

from __future__ import annotations

import sys

import pytest

from backends import Sampling
from core.errors import UserError
from tests.fakes import fake_vllm_path

PROMPTS = [[{"role": "user", "content": f"Write financial news number {i} as JSON."}] for i in range(4)]


@pytest.fixture
def fake_vllm(monkeypatch):
    """`import vllm` is the fake for this test; the process's shared engine starts empty and ends released."""
    if "vllm" in sys.modules and not getattr(sys.modules["vllm"], "IS_FAKE", False):
        pytest.skip("the real vLLM is imported in this process")
    monkeypatch.syspath_prepend(str(fake_vllm_path()))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    from backends import vllm_backend

    assert vllm.IS_FAKE
    vllm_backend.release_engine()
    vllm.LOG.clear()
    yield vllm
    vllm_backend.release_engine()


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """Two real PEFT adapters of the tiny model: LoRA only (servable by vLLM), and one with modules_to_save."""
    from peft import LoraConfig, get_peft_model

    from backends.models import load_model

    out = {}
    for name, extra in (("lora", {}), ("lora32", {"r": 32}), ("saved", {"modules_to_save": ["lm_head"]})):
        model, _ = load_model("tiny", device="cpu")
        config = LoraConfig(**{"r": 8, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM", **extra})
        folder = tmp_path_factory.mktemp(name)
        get_peft_model(model, config).save_pretrained(folder)
        out[name] = folder
    return out


def test_generate_uses_structured_outputs_and_one_seed_per_prompt(fake_vllm):
    from backends import get_backend
    from core.tasks import load_task

    task = load_task("fin_sentiment")
    backend = get_backend("vllm", model="tiny")
    sampling = Sampling(temperature=0.8, max_new_tokens=384, seed=7)
    out = backend.generate(PROMPTS, task.generation_schema(), sampling, seeds=[11, 12, 13, 14])
    assert all(c.ok and c.parsed["label"] in task.label_names for c in out), [c.error for c in out]
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in out)
    init, call = fake_vllm.LOG
    assert init["event"] == "init" and "enable_lora" not in init
    assert call["seeds"] == [11, 12, 13, 14] and call["structured"] == [True]
    assert call["prompt_kind"] == ["tokens"] and call["double_bos"] == 0 and call["lora"] == [""]
    # A sample is a function of its own seed: the same seed alone in a batch gives the same sample.
    again = backend.generate(PROMPTS[2:3], task.generation_schema(), sampling, seeds=[13])
    assert again[0].text == out[2].text
    # Default seeds: sampling.seed + i, distinct per row.
    backend.generate(PROMPTS[:2], None, sampling)
    assert fake_vllm.LOG[-1]["seeds"] == [7, 8] and fake_vllm.LOG[-1]["structured"] == [False]


def test_length_cut_is_an_error_row(fake_vllm):
    from backends import get_backend
    from core.tasks import load_task

    schema = load_task("fin_sentiment").generation_schema()
    out = get_backend("vllm", model="tiny").generate(PROMPTS[:1], schema, Sampling(max_new_tokens=3))
    assert out[0].error == "hit max_new_tokens=3 before the JSON closed" and out[0].finish_reason == "error"


def test_base_and_tuned_share_one_engine_with_a_lora_request(fake_vllm, adapters):
    from backends import get_backend

    base = get_backend("vllm", model="tiny", enable_lora=True, max_lora_rank=8)
    tuned = base.with_adapter(adapters["lora"])
    assert tuned.llm is base.llm and tuned.model_id.endswith(str(adapters["lora"]))
    choices = ["positive", "negative", "neutral"]
    base_scores, tuned_scores = base.score(PROMPTS[:2], choices), tuned.score(PROMPTS[:2], choices)
    assert len(base_scores) == 2 and all(len(r) == 3 and all(s < 0 for s in r) for r in base_scores)
    assert base_scores != tuned_scores  # the adapter's requests really carry the adapter
    tuned.generate(PROMPTS[:1], None, Sampling())
    inits = [e for e in fake_vllm.LOG if e["event"] == "init"]
    assert len(inits) == 1 and inits[0]["enable_lora"] is True and inits[0]["max_lora_rank"] == 8
    calls = [e for e in fake_vllm.LOG if e["event"] == "generate"]
    assert [c["lora"] for c in calls] == [[""], [str(adapters["lora"].resolve())], [str(adapters["lora"].resolve())]]
    assert calls[0]["prompt_logprobs"] == [True]
    # An adapter of higher rank than the engine takes is refused before any request.
    with pytest.raises(UserError, match="max_lora_rank>=32"):
        base.with_adapter(adapters["lora32"])


def test_an_adapter_vllm_cannot_serve_is_one_clear_error(fake_vllm, adapters):
    from backends import get_backend

    with pytest.raises(UserError, match=r"adapter_config.json: field 'modules_to_save'.*--backend transformers"):
        get_backend("vllm", model="tiny", adapter=adapters["saved"])
    assert fake_vllm.LOG == []  # refused before an engine was built


def test_the_fake_rejects_what_vllm_rejects(fake_vllm, adapters, tiny_path):
    """The fake is only worth its checks: an `adapter=` engine keyword and a LoRA request on a plain engine fail."""
    from vllm.lora.request import LoRARequest

    with pytest.raises(TypeError, match="adapter"):
        fake_vllm.LLM(model=str(tiny_path), adapter="x")
    llm = fake_vllm.LLM(model=str(tiny_path))
    with pytest.raises(ValueError, match="LoRA is not enabled"):
        llm.generate(["hi"], fake_vllm.SamplingParams(), lora_request=LoRARequest("a", 1, str(adapters["lora"])))
    with pytest.raises(TypeError):
        fake_vllm.SamplingParams(guided_decoding={"json": {}})  # removed in vLLM 0.12


def test_evaluate_runs_base_and_tuned_on_one_engine(fake_vllm, adapters, samples_dir, tmp_path):
    import json

    from core.records import Record
    from core.tasks import load_task
    from evaluator.run import evaluate

    task = load_task("fin_sentiment")
    rows = [json.loads(line) for line in (samples_dir / "fin_sentiment" / "en.jsonl").read_text().splitlines()[:6]]
    records = [Record.new(task="fin_sentiment", lang="en", text=r["text"],
                          labels={"label": task.normalise_label(r["label"])}) for r in rows]
    for mode in ("score", "constrained"):
        fake_vllm.LOG.clear()
        metrics = evaluate(task, records, model="tiny", adapter=adapters["lora"], out_dir=tmp_path / mode,
                           mode=mode, backend="vllm", n_bootstrap=50)
        assert 0 <= metrics["base"]["accuracy"] <= 1 and 0 <= metrics["tuned"]["accuracy"] <= 1
        assert "paired" in metrics and (tmp_path / mode / "predictions.jsonl").is_file()
        calls = [e for e in fake_vllm.LOG if e["event"] == "generate"]
        assert {c["engine"] for c in calls} == {calls[0]["engine"]}
        assert {tuple(c["lora"]) for c in calls} == {("",), (str(adapters["lora"].resolve()),)}
    # One engine for the whole process: the second evaluation reused the first one's.
    assert not [e for e in fake_vllm.LOG if e["event"] == "init"]
