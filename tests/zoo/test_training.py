"""The trainer on every family: `trainer format` shows the family's exact special tokens, and LoRA SFT puts
the loss on exactly the answer and its end-of-turn token (asserted on the labels TRL trains on)."""

from __future__ import annotations

import pytest

from tests.zoo.conftest import loaded, trained
from trainer.cli import main
from trainer.formatting import loss_tokens, to_example

pytestmark = pytest.mark.zoo

# What `trainer format` must show of each family's template (Gemma: no system turn anywhere), and the
# end-of-turn token the loss ends with.
SHOWN = {
    "tiny-llama3": (["<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date:",
                     "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
                     "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"], "<|eot_id|>"),
    "tiny-qwen2": (["<|im_start|>system\n", "<|im_end|>\n<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"],
                   "<|im_end|>"),
    "tiny-mistral": (["<s>[INST] ", "[/INST] "], "</s>"),
    "tiny-gemma": (["<bos><start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n"], "<end_of_turn>"),
    "tiny-phi3": (["<|system|>\n", "<|end|>\n<|user|>\n", "<|end|>\n<|assistant|>\n", "<|end|>\n<|endoftext|>"],
                  "<|end|>"),
}


def test_format_shows_the_exact_special_tokens(family, fin_few_file, capsys):
    assert main(["format", "--task", "fin_sentiment", "--model", family, "--in", str(fin_few_file),
                 "--show", "2"]) == 0
    out = capsys.readouterr().out
    shown, end = SHOWN[family]
    for piece in shown:
        assert piece in out, piece
    template = out.split("--- chat template")[1].split("--- loss on")[0]
    assert "You are a careful financial analyst" in template, "the system text is in every family's text"
    assert "<start_of_turn>system" not in template, "Gemma's text carries no system turn"
    assert f"--- loss on: '{out.split('[assistant] ')[1].splitlines()[0]}{end}'" in out


def test_lora_sft_trains_on_the_answer_and_its_end_of_turn_only(family, fin_few, zoo_tmp):
    """TRL's labels are the token ids of the answer + end-of-turn token, -100 everywhere else (before it,
    and after it: Qwen's and Gemma's newline, Phi-3's <|endoftext|>); then a LoRA step trains."""
    rows, summary = trained(family, zoo_tmp)
    _, tok = loaded(family)
    end = SHOWN[family][1]
    answers = []
    for row in rows:
        on = [i for i, label in enumerate(row["labels"]) if label != -100]
        assert on == list(range(on[0], on[-1] + 1)), "one contiguous answer"
        assert [row["labels"][i] for i in on] == [row["input_ids"][i] for i in on]
        assert row["input_ids"][on[-1]] == tok.convert_tokens_to_ids(end)
        answers.append(tok.decode([row["input_ids"][i] for i in on]))
    assert sorted(answers) == sorted(r.labels["label"] + end for r in fin_few)
    assert summary["steps"] == 1 and summary["train_loss"] > 0 and summary["trainable_params"] > 0


def test_json_answers_are_masked_whole(family, support_records, support_task):
    """A support ticket's JSON answer: the loss covers it from its first character ('{', on Mistral with
    the space before it, '▁{') to the end-of-turn token."""
    _, tok = loaded(family)
    example = to_example(support_records[0], support_task)
    ids, mask = loss_tokens(tok, example)
    trained_text = tok.decode([i for i, on in zip(ids, mask, strict=True) if on])
    assert trained_text == example["completion"][0]["content"] + SHOWN[family][1]
