"""bench peers: the parts that decide what its rows claim, without the peers' venv (a real run needs it).

The peers' side (bench/peers_side/peer.py) runs only in `.venv-peers`; here we check that it stays
importable-clean (nothing of ours, so our pins never leak into it), that our side's server answers
over the protocol the driver speaks, and the token facts and task files the agreement check rests on.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import yaml

from backends.models import TINY, load_tokenizer
from bench import bench_peers
from bench.bench_peers import Server, alternate, token_facts, write_lmeval_tasks

PACKAGES = {"core", "backends", "validators", "data", "evaluator", "generator", "review_app", "trainer", "oneshot",
            "loop", "bench"}


def test_the_peer_side_imports_nothing_of_ours():
    tree = ast.parse(bench_peers.PEER.read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not names & PACKAGES
    assert {"distilabel", "lm_eval"} <= names


def test_alternate_flips_the_order_every_round():
    order: list[str] = []
    results = alternate(3, {"a": lambda: order.append("a") or 1, "b": lambda: order.append("b") or 2})
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert results == {"a": [1, 1, 1], "b": [2, 2, 2]}


def test_token_facts_find_lmevals_moved_newlines_and_our_choice_tokens():
    tok = load_tokenizer(TINY)
    texts = [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
             for t in ("Profit rose.", "Shares fell sharply after the warning.")]
    choices = ["positive", "negative", "neutral"]

    def enc(s: str) -> list[int]:
        return tok(s, add_special_tokens=False)["input_ids"]

    # lm-eval's _encode_pair: trailing whitespace moved into the continuation, whole encoded, split
    stock = [[enc(t.rstrip() + t[len(t.rstrip()):] + c)[len(enc(t.rstrip())):] for c in choices] for t in texts]
    facts = token_facts(tok, texts, choices, stock)
    assert texts[0].endswith("\n\n")
    assert facts["stock_moved"] == facts["items"] == 2 and facts["moved"] == ["\n\n"]
    assert facts["joint_same"] == facts["pairs"] == 6
    # a continuation that is not "moved + our choice tokens" is not counted
    stock[1][2] = enc("neutral")[:-1] or [0]
    assert token_facts(tok, texts, choices, stock)["stock_moved"] == 1


def test_lmeval_task_files_score_our_prompt_with_labels_as_choices(tmp_path):
    items = [{"id": "en_001", "prompt": "<s>x\n\n", "label": "neutral", "gold": 2}]
    mc, gen = write_lmeval_tasks(tmp_path, "tiny", items, ["positive", "negative", "neutral"], ["<|eot_id|>"], 24)
    spec = yaml.safe_load((tmp_path / f"{mc}.yaml").read_text())
    assert spec["output_type"] == "multiple_choice" and spec["doc_to_choice"] == ["positive", "negative", "neutral"]
    assert spec["doc_to_text"] == "prompt" and spec["target_delimiter"] == "" and spec["num_fewshot"] == 0
    data = spec["dataset_kwargs"]["data_files"]["test"]
    assert [yaml.safe_load(line) for line in Path(data).read_text(encoding="utf-8").splitlines()] == items
    spec = yaml.safe_load((tmp_path / f"{gen}.yaml").read_text())
    assert spec["generation_kwargs"] == {"until": ["<|eot_id|>"], "max_gen_toks": 24, "do_sample": False}


@pytest.mark.slow  # a server process importing torch + transformers: ~50 s on the loaded 2 cores
def test_our_side_answers_over_the_drivers_protocol(monkeypatch, tmp_path):
    """The real server process on the tiny model: render, score and the error reply."""
    monkeypatch.setattr(bench_peers, "WORK", tmp_path)
    from backends.models import tiny_model_path
    from core.tasks import load_task
    from evaluator.prompts import tuned_prompts
    from tests.validators.helpers import make

    task = load_task("fin_sentiment")
    messages = tuned_prompts(task, [make("Profit rose 20%.", rid="a"), make("Shares fell.", rid="b")])
    with Server("ours-test", [sys.executable, "-m", "bench.peers_ours"], bench_peers._env(peers=False)) as ours:
        ours("load", model=str(tiny_model_path(name=TINY)), batch=2, threads=1)
        texts = ours("inputs", messages=messages)["texts"]
        assert texts[0].endswith("\n\n") and "Profit rose 20%." in texts[0]
        scored = ours("predict", messages=messages, mode="score", batch=2)
        assert len(scored["scores"]) == 2 and all(len(row) == 3 and max(row) < 0 for row in scored["scores"])
        assert scored["seconds"] > 0 and scored["peak_rss_mb"] > 0
        try:
            ours("predict", messages=messages, mode="nonsense", batch=2)
        except RuntimeError as exc:
            assert "mode must be one of" in str(exc)
        else:
            raise AssertionError("a failing op must raise in the driver")
