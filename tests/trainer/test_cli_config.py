"""The trainer's command line is derived from `TrainConfig`; defaults come from one table by model size."""

from __future__ import annotations

import dataclasses

import pytest

from trainer.cli import train_parser
from trainer.config import SIZE_DEFAULTS, TASK_DEFAULTS, TrainConfig, defaults_for, model_size


def _parse(*argv: str) -> TrainConfig:
    config, _rest = train_parser().parse_args_into_dataclasses(args=["--train", "a.jsonl", *argv])
    return config


def test_every_field_is_a_flag_with_its_help(capsys):
    with pytest.raises(SystemExit):
        train_parser().parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in out
        assert " ".join(f.metadata["help"].split()) in out.replace("- ", "-"), f.name


def test_existing_spellings_keep_their_meaning():
    c = _parse("--lr", "0.01", "--time-budget", "30", "--no-group-by-length", "--packing", "--merge",
               "--modules-to-save", "--push-to-hub", "me/adapter", "--max-steps", "5", "--lora-r", "4",
               "--target-modules", "q_proj", "v_proj", "--method", "full")
    assert (c.learning_rate, c.time_budget_s, c.group_by_length, c.packing, c.merge) == (0.01, 30.0, False, True, True)
    assert (c.modules_to_save, c.push_to_hub, c.max_steps, c.lora_r) == ([], "me/adapter", 5, 4)
    assert (c.target_modules, c.method, c.train) == (["q_proj", "v_proj"], "full", ["a.jsonl"])
    assert _parse("--learning-rate", "0.5").learning_rate == 0.5
    d = _parse()
    assert d == TrainConfig(train=["a.jsonl"])  # unset flags keep the dataclass defaults
    assert d.modules_to_save is None and d.group_by_length is True


def test_input_columns_travel_beside_the_config():
    _config, rest = train_parser().parse_args_into_dataclasses(
        args=["--train", "t.csv", "--text-col", "headline", "--output-col", "reply=r", "--output-col", "x=y"])
    assert (rest.text_col, rest.label_col, rest.lang, rest.output_col) == ("headline", "label", "en", ["reply=r", "x=y"])


def test_bad_values_are_refused(capsys):
    for argv in (["--method", "bogus"], ["--max-steps", "many"], []):
        with pytest.raises(SystemExit) as exc:
            train_parser().parse_args_into_dataclasses(args=argv if not argv else ["--train", "a", *argv])
        assert exc.value.code == 2
    assert "--train" in capsys.readouterr().err


@pytest.mark.parametrize(("model", "size"), [
    ("tiny", "tiny"), ("tiny-llama3", "tiny"), ("unsloth/Llama-3.2-1B-Instruct", "1b"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "small"), ("google/gemma-3-270m", "small"),
    ("unsloth/Llama-3.2-3B-Instruct", "3b"), ("meta-llama/Llama-3.1-8B-Instruct", "8b"), ("Qwen/Qwen2.5-7B", "8b"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "1b"), ("TinyLlama/TinyLlama-1.1B-Chat", "1b"), ("some/unsized-model", "1b"),
])
def test_model_size_from_the_name(model, size):
    assert model_size(model) == size


def test_model_size_from_a_local_config(tmp_path):
    from transformers import LlamaConfig

    # A 3B-shaped Llama in a folder whose name says nothing: counted on the meta device, no weights.
    LlamaConfig(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
                num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True).save_pretrained(tmp_path / "m")
    assert model_size(str(tmp_path / "m")) == "3b"
    LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                vocab_size=1000).save_pretrained(tmp_path / "big-70B")  # the config wins over the name
    assert model_size(str(tmp_path / "big-70B")) == "small"


def test_defaults_by_size_method_and_task():
    assert TrainConfig(model="tiny").resolved().learning_rate == SIZE_DEFAULTS["tiny"]["learning_rate"]
    assert TrainConfig(model="org/Llama-3.2-1B").resolved().batch_size == 8
    eight = TrainConfig(model="org/Llama-3.1-8B").resolved()
    assert (eight.batch_size, eight.grad_accum, eight.learning_rate) == (2, 8, 1e-4)
    assert TrainConfig(model="org/Llama-3.1-8B", method="full").resolved().learning_rate == 1e-5
    assert TrainConfig(model="tiny", batch_size=3).resolved().batch_size == 3  # a given value wins
    # Task rows apply only when asked for, on top of the size's row.
    assert TrainConfig(model="tiny", task="support_intent").resolved().max_length == SIZE_DEFAULTS["tiny"][
        "max_length"]
    asked = TrainConfig(model="tiny", task="support_intent", task_defaults=True).resolved()
    assert (asked.max_length, asked.epochs) == (1024, 2.0)  # TASK_DEFAULTS["support_intent"]["tiny"]
    assert defaults_for("org/Llama-3.1-8B", task="support_intent")["max_length"] == TASK_DEFAULTS[
        "support_intent"]["*"]["max_length"]
    assert defaults_for("org/Llama-3.1-8B", task="fin_sentiment") == defaults_for("org/Llama-3.1-8B")
    # Lists are copies: changing one run's config cannot change the table.
    defaults_for("tiny")["modules_to_save"].append("x")
    assert SIZE_DEFAULTS["tiny"]["modules_to_save"] == ["embed_tokens", "lm_head"]
