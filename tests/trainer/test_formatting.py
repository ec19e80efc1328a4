"""Formatting: records → task messages → the tiny model's chat template; input errors are one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backends.models import load_tokenizer
from core.errors import UserError
from core.inputs import ColumnMap, load_inputs
from trainer.cli import main
from trainer.formatting import loss_tokens, render, to_example, to_examples, tokenize


def test_format_command_shows_messages_and_chat_template(fin_files, capsys):
    train, _ = fin_files
    assert main(["format", "--task", "fin_sentiment", "--model", "tiny", "--in", str(train), "--show", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== example") == 3
    assert "[system] You are a careful financial analyst" in out
    assert "[assistant] " in out
    for token in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
        assert token in out
    assert "--- loss on: '" in out


def test_examples_are_prompt_completion_and_rotate_instructions(fin_records, fin_task):
    rows = to_examples(fin_records, fin_task, seed=0)
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert rows[0]["completion"] == [{"role": "assistant", "content": fin_records[0].labels["label"]}]
    instructions = {r["prompt"][1]["content"].split("\n")[0] for r, rec in zip(rows, fin_records, strict=True) if rec.lang == "en"}
    assert len(instructions) == len(fin_task.instructions)  # every paraphrase is used
    assert to_examples(fin_records, fin_task, seed=0) == rows  # same seed, same wording
    assert to_examples(fin_records, fin_task, seed=1) != rows


def test_the_loss_falls_on_the_answer_and_its_end_of_turn_token(fin_records, fin_task):
    tok = load_tokenizer("tiny")
    example = to_example(fin_records[0], fin_task)
    ids, mask = loss_tokens(tok, example)
    assert tok.decode([i for i, on in zip(ids, mask, strict=True) if on]) == fin_records[0].labels["label"] + "<|eot_id|>"
    assert tok.decode(ids) == render(tok, example)
    assert mask == sorted(mask) and mask[-1] == 1, "the masked tokens are the text's last ones here"
    assert tokenize(tok, example) == {"input_ids": ids, "completion_mask": mask}


def test_support_task_answers_json(samples_dir):
    from core.tasks import load_task

    task = load_task("support_intent")
    cols = ColumnMap(text="ticket", label="intent", outputs={"reply": "ideal_reply"})
    records = load_inputs([str(samples_dir / "northstar" / "train.jsonl")], task, cols)
    answer = to_example(records[0], task)["completion"][0]["content"]
    assert answer.startswith('{"intent": "') and '"reply": "' in answer


def test_csv_parquet_and_column_errors(tmp_path, fin_task):
    csv = tmp_path / "t.csv"
    csv.write_text("sentence,sentiment\nProfit rose 20% in the quarter,bullish\nSales fell sharply,xyz\n")
    with pytest.raises(UserError, match=r"t\.csv:3: field 'sentiment': unknown label 'xyz'"):
        load_inputs([str(csv)], fin_task, ColumnMap(text="sentence", label="sentiment"))
    with pytest.raises(UserError, match=r"t\.csv:1: missing column 'label'"):
        load_inputs([str(csv)], fin_task, ColumnMap(text="sentence"))
    import pandas as pd

    pd.DataFrame({"text": ["Profit rose 20%"], "label": ["positive"]}).to_parquet(tmp_path / "t.parquet")
    [rec] = load_inputs([str(tmp_path / "t.parquet")], fin_task, ColumnMap(lang="vi"))
    assert (rec.lang, rec.labels) == ("vi", {"label": "positive"})


def test_cli_errors_are_one_line_without_traceback(tmp_path, samples_dir, repo):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases = [
        (["format", "--task", "fin_sentiment", "--in", str(empty)], "empty.jsonl: empty file"),
        (["--task", "fin_sentiment", "--train", str(samples_dir / "fin_sentiment" / "en.jsonl"),
          "--text-col", "sentence"], "en.jsonl:1: missing field 'sentence'"),
        (["--task", "fin_sentiment", "--train", str(tmp_path / "nope.jsonl")], "nope.jsonl: file not found"),
    ]
    for argv, message in cases:
        proc = subprocess.run([sys.executable, "-m", "trainer", *argv], cwd=repo, capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
