"""Never train on a truncated answer: every example is length-checked; run.py's prompts drop neighbours to
fit; a row that still does not fit is skipped with a warning naming it. And training follows the memory plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.models import load_tokenizer
from oneshot.adapter import train_adapter
from oneshot.contract import TrainRow, read_train
from oneshot.prompts import training_example
from trainer.config import TrainConfig
from trainer.formatting import loss_tokens, to_example, to_examples
from trainer.lengths import fit_lengths, token_length
from trainer.sft import build_trainer, train


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny")


def test_an_example_over_max_length_is_skipped_and_no_kept_answer_is_cut(fin_task, fin_records, tok, capsys):
    records = fin_records[:24]
    lengths = [token_length(tok, to_example(r, fin_task)) for r in records]
    limit = sorted(lengths)[len(lengths) // 2]
    too_long = [r for r, n in zip(records, lengths, strict=True) if n > limit]
    assert too_long
    cfg = TrainConfig(task="fin_sentiment", model="tiny", out="unused", device="cpu", max_length=limit,
                      batch_size=4).resolved()
    trainer = build_trainer(cfg, fin_task, records, [])
    err = capsys.readouterr().err
    for r in too_long:
        assert f"warning: train record {r.id}: " in err and f"> max_length {limit}; skipped" in err
    assert trainer.length_check["train"]["skipped"] == [f"record {r.id}" for r in too_long]
    assert len(trainer.train_dataset) == len(records) - len(too_long)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    for row in trainer.train_dataset:
        assert len(row["input_ids"]) <= limit and row["input_ids"][-1] == eot  # the whole answer, then end of turn


def test_candidates_fall_back_to_the_first_that_fits(tok, capsys):
    rows = read_train(Path(__file__).resolve().parents[2] / "data" / "samples" / "northstar" / "train.jsonl")
    intents = sorted({r.intent for r in rows})
    row, neighbours = rows[0], rows[1:5]
    candidates = [{**training_example(row, neighbours[k:], intents),
                   **({"shortened": f"{k} of 4 neighbours dropped"} if k else {})} for k in range(5)]
    lengths = [token_length(tok, c) for c in candidates]
    assert lengths == sorted(lengths, reverse=True)
    kept, report = fit_lengths(tok, [candidates], ["row x"], lengths[2])
    assert kept[0]["prompt"] == candidates[2]["prompt"] and "shortened" not in kept[0]
    assert report["shortened"] == ["row x"] and not report["skipped"]
    assert f"train row x: {lengths[0]} tokens > max_length {lengths[2]}; 2 of 4 neighbours dropped" in \
        capsys.readouterr().err
    kept, report = fit_lengths(tok, [candidates], ["row x"], lengths[4] - 1)
    assert kept == [] and report["skipped"] == ["row x"]
    assert f"({lengths[4]} in the shortest of 5 forms) > max_length {lengths[4] - 1}; skipped" in \
        capsys.readouterr().err


def test_run_py_training_drops_neighbours_then_skips_a_row_that_never_fits(tmp_path, tok, capsys):
    rows = read_train(Path(__file__).resolve().parents[2] / "data" / "samples" / "northstar" / "train.jsonl")[:6]
    long_row = TrainRow("long_ticket", "Please help. " * 400, rows[0].intent, rows[0].reply)
    rows = [*rows, long_row]
    intents = sorted({r.intent for r in rows})
    neighbours = {r.id: [n for n in rows[:6] if n.id != r.id][:3] for r in rows}
    full = max(token_length(tok, training_example(r, neighbours[r.id], intents)) for r in rows[:6])
    bare = max(token_length(tok, training_example(r, [], intents)) for r in rows[:6])
    limit = (full + bare) // 2
    assert token_length(tok, training_example(long_row, [], intents)) > limit
    out = tmp_path / "w"
    summary = train_adapter(rows, neighbours, intents, base_model="tiny", out=out, seed=0, budget_s=600,
                            overrides={"max_length": limit, "max_steps": 1, "batch_size": 2})
    assert summary["steps"] == 1
    err = capsys.readouterr().err
    assert "train row long_ticket: " in err and "skipped, its answer would be truncated" in err
    assert "neighbours dropped" in err
    checked = json.loads((out / "training_summary.json").read_text())["length_check"]["train"]
    assert checked["skipped"] == ["row long_ticket"] and checked["shortened"]
    assert checked["max_tokens"] <= limit


def test_training_follows_the_memory_plan_on_a_small_device(fin_task, fin_records, tmp_path, monkeypatch):
    """A device with little free memory (its free bytes faked: the plan's decision is what is tested): the
    run trains at a smaller device batch with more accumulation, and says so in its summary."""
    import trainer.sft as sft
    from trainer.plan import estimate

    cfg = TrainConfig(task="fin_sentiment", model="tiny", out=str(tmp_path / "a"), device="cpu", batch_size=8,
                      grad_accum=1, max_length=192, max_steps=1, val_fraction=0.0).resolved()
    records = fin_records[:32]
    tokenizer = load_tokenizer("tiny")
    kept, lengths = fit_lengths(tokenizer, to_examples(records, fin_task, cfg.seed), [r.id for r in records],
                                cfg.max_length)
    longest = lengths["max_tokens"]
    answer = max(sum(loss_tokens(tokenizer, example)[1]) for example in kept)  # the LM head's rows per example
    free = estimate(TrainConfig(**{**cfg.as_dict(), "batch_size": 2}), "cpu", checkpointing=False,
                    longest=longest, answer=answer).required
    monkeypatch.setattr(sft, "free_bytes", lambda device: free)
    summary = train(cfg, records=records)
    plan = summary["memory_plan"]
    assert plan["used"] and plan["fits"] and (plan["batch_size"], plan["grad_accum"]) == (2, 4)
    # Activations are counted at the data's longest example, not at max_length (no batch is padded beyond it).
    assert plan["tokens_counted"] == longest == summary["length_check"]["train"]["max_tokens"] < cfg.max_length
    assert free < estimate(TrainConfig(**{**cfg.as_dict(), "batch_size": 2}), "cpu", checkpointing=False).required
    assert plan["changed"] == "batch 8 -> 2 with grad_accum 1 -> 4"
    assert (summary["config"]["batch_size"], summary["config"]["grad_accum"]) == (2, 4)
    monkeypatch.setattr(sft, "free_bytes", lambda device: 10**12)
    as_set = train(TrainConfig(**{**cfg.as_dict(), "out": str(tmp_path / "b")}), records=fin_records[:32])
    assert as_set["memory_plan"]["changed"] == "" and as_set["config"]["batch_size"] == 8
