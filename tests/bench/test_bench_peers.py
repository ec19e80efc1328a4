"""bench peers: the parts that decide what its rows claim, without the peers' venv (a real run needs it).

The peers' side (bench/peers_side/peer.py) runs only in `.venv-peers`; here we check that it stays
importable-clean (nothing of ours, so our pins never leak into it), that our side's server answers
over the protocol the driver speaks, and the token facts and task files the agreement check rests on.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import yaml

from backends import chat
from backends.models import TINY, load_tokenizer
from bench import peers_harness
from bench.peers_harness import Server, alternate, request_line
from bench.peers_scoring import SCORING, lmeval_requests, scoring_inputs, token_facts, write_lmeval_tasks

PACKAGES = {"core", "backends", "validators", "data", "evaluator", "generator", "review_app", "trainer", "oneshot",
            "loop", "bench"}


def test_the_peer_side_imports_nothing_of_ours():
    tree = ast.parse(peers_harness.PEER.read_text(encoding="utf-8"))
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


def test_the_scoring_sides_requests_build_without_the_peers_venv(tmp_path):
    """Everything the driver sends lm-eval for a scoring row, made as `scoring_rows` makes it, before any
    server starts: the task files and the request lines (issue 35: a `ScoreChoices` reached the YAML
    writer, and `make bench-peers` stopped after its generation side with nothing in `make test` failing)."""
    inputs = scoring_inputs(SCORING[0])
    tok = inputs.tokenizer
    # our side's "inputs" op: TransformersBackend.render, the chat template with the assistant header
    texts = [chat.render(tok, m, add_generation_prompt=True) for m in inputs.messages]
    lmeval = lmeval_requests(inputs, texts, tmp_path)

    mc = yaml.safe_load((tmp_path / f"{lmeval.mc}.yaml").read_text())
    assert mc["doc_to_choice"] == inputs.task.label_names == ["positive", "negative", "neutral"]
    rows = [json.loads(line) for line in Path(mc["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
    assert [r["prompt"] for r in rows] == texts and len(rows) == len(inputs.records) > 100
    assert [mc["doc_to_choice"][r["gold"]] for r in rows] == [r.labels["label"] for r in inputs.records]
    gen = yaml.safe_load((tmp_path / f"{lmeval.gen}.yaml").read_text())
    assert gen["generation_kwargs"] == {"until": inputs.stops, "max_gen_toks": inputs.task.max_new_tokens(),
                                        "do_sample": False} and "<|eot_id|>" in inputs.stops  # the end of a turn

    # one pair per item and choice: our prompt, the choice, and the token ids our scorer scores there
    assert [(p[0], p[1]) for p in lmeval.pairs] == [(t, c) for t in texts for c in mc["doc_to_choice"]]
    for text, choice, context_ids, choice_ids in lmeval.pairs:
        assert context_ids == tok(text, add_special_tokens=False)["input_ids"]  # the prompt ends in "\n\n"
        assert tok.decode(choice_ids) == choice
    # the lines the peer's stdin gets: plain JSON that reads back as sent
    for op, args in (("lmeval_load", {"model": str(inputs.folder), "batch": 16, "tasks": str(lmeval.folder),
                                      "threads": 1}),
                     ("lmeval_encode", {"pairs": lmeval.pairs})):
        line = request_line(op, **args)
        assert line.endswith("\n") and line.count("\n") == 1 and json.loads(line) == {"op": op, **args}


@pytest.mark.slow  # a server process importing torch + transformers: ~50 s on the loaded 2 cores
def test_our_side_answers_over_the_drivers_protocol(monkeypatch, tmp_path):
    """The real server process on the tiny model: render, score and the error reply."""
    monkeypatch.setattr(peers_harness, "WORK", tmp_path)
    from backends.models import tiny_model_path
    from core.tasks import load_task
    from evaluator.prompts import tuned_prompts
    from tests.validators.helpers import make

    task = load_task("fin_sentiment")
    messages = tuned_prompts(task, [make("Profit rose 20%.", rid="a"), make("Shares fell.", rid="b")])
    with Server("ours-test", [sys.executable, "-m", "bench.peers_ours"], peers_harness.side_env(peers=False)) as ours:
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
