"""The evaluator's three modes and the generator on every family: constrained decoding over the real
vocabulary (every output parses), choice scoring base vs tuned with the adapter the trainer wrote, and
Gemma's template (no system role) through all of them."""

from __future__ import annotations

import pytest

from backends import Sampling
from backends.transformers_backend import TransformersBackend
from evaluator.run import evaluate
from tests.zoo.conftest import loaded, trained

pytestmark = pytest.mark.zoo


def test_score_mode_base_and_tuned(family, fin_task, fin_few, zoo_tmp):
    _, summary = trained(family, zoo_tmp)
    metrics = evaluate(fin_task, fin_few, model=family, adapter=summary["adapter"], mode="score",
                       loaded=loaded(family), n_bootstrap=10)
    for name in ("base", "tuned"):
        assert metrics[name]["n"] == len(fin_few) and metrics[name]["rules"] == {"score": len(fin_few)}
    assert "paired" in metrics


@pytest.mark.parametrize("mode", ["constrained", "free"])
def test_generation_modes(family, mode, fin_task, fin_few):
    metrics = evaluate(fin_task, fin_few[2:6], model=family, mode=mode, loaded=loaded(family), n_bootstrap=10,
                       max_new_tokens=24)
    rules = metrics["base"]["rules"]
    if mode == "constrained":
        # The JSON schema admits a label only, so 24 tokens close it on every family's vocabulary.
        assert rules == {"constrained": 4}, rules
    else:
        assert sum(rules.values()) == 4
    rendered = metrics["prompts"]["base"]["example_rendered"]
    assert "You are a careful financial analyst" in rendered and "<start_of_turn>system" not in rendered


def test_outlines_reads_each_token_as_the_decoder_writes_it(family, fin_task):
    """What the constraint believes a token writes is what decoding writes (Gemma's SentencePiece keeps
    the space of "▁the": Outlines alone reads it as two spaces and miscounts string lengths)."""
    model, tok = loaded(family)
    backend = TransformersBackend(family, loaded=(model, tok))
    backend.logits_processor(fin_task.output_schema())
    believed = backend._outlines_model.tokenizer.convert_token_to_string
    [anchor] = tok("x", add_special_tokens=False)["input_ids"][:1]
    for token_id in tok("x the cat sat\nRefund đơn", add_special_tokens=False)["input_ids"][1:]:
        written = tok.decode([anchor, token_id])[len(tok.decode([anchor])):]
        if "\ufffd" not in written:  # a lone byte of a multi-byte character writes no whole character
            assert believed(tok.convert_ids_to_tokens(token_id)) == written, tok.convert_ids_to_tokens(token_id)


def test_generation_prompts_render_on_gemma(seeds_file, tmp_path):
    """generate.py's prompts (a generation system turn, then the request) through Gemma's template,
    constrained to the task's sample schema."""
    from generator.runner import make_config, run_generation

    model, tok = loaded("tiny-gemma")
    cfg = make_config(task="fin_sentiment", lang="en", n=2, seeds=seeds_file, out=tmp_path / "gen",
                      model="tiny-gemma", max_new_tokens=40)
    result = run_generation(cfg, backend=TransformersBackend("tiny-gemma", loaded=(model, tok)), progress=False)
    assert len(result.records) == 2  # a refused system role would have raised while rendering
    out = TransformersBackend("tiny-gemma", loaded=(model, tok)).generate(
        [[{"role": "system", "content": "Write JSON."}, {"role": "user", "content": "A sample, please."}]],
        None, Sampling(max_new_tokens=4))
    assert out[0].completion_tokens > 0
