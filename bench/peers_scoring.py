"""The peers bench's scoring side: our choice scoring and label generation against lm-evaluation-harness's
log-likelihood and generate_until on the same eval items (`python -m bench peers`, bench/bench_peers.py).

`scoring_inputs` and `lmeval_requests` make everything lm-eval is sent (its task files, the token ids
of its "ids" encoding) before any server starts, so tests build them without the peers' venv;
`scoring_rows` runs both sides and checks that their log-likelihoods agree (`token_facts`: which tokens
each side scores). What each row compares: docs/benchmarks.md "Scoring: lm-evaluation-harness".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends import chat
from backends.models import TINY_LLAMA3, load_tokenizer, resolve_model
from bench import BenchRow, ratio
from bench.bench_evaluator import _records
from bench.peers_harness import ROUNDS, THREADS, WORK, alternate, best, both_sides, dump, load_avg
from core.records import Record
from core.task_spec import Task
from core.tasks import load_task
from evaluator.prompts import score_choices, tuned_prompts

EVAL_BATCH = 16  # both sides' scoring batch
# Scoring models: the Llama-3-shaped tiny model (128k vocabulary, like the models users score); add
# "tiny" (4k vocabulary) or the real smollm2-135m with SEEDLOOP_PEERS_SCORING=tiny-llama3,smollm2-135m.
SCORING = [m for m in os.environ.get("SEEDLOOP_PEERS_SCORING", TINY_LLAMA3).split(",") if m]
# Per-item, per-choice log-likelihood agreement, in nats. Both sides compute float32 log-softmax of
# the same logits, but over different batch shapes and paddings (lm-eval: right-padded rows without
# attention mask; ours: left-padded prompts, a KV cache, choices on top), so they agree to float32
# rounding (~1e-6 measured), not bit for bit; 1e-4 is far below any difference between two labels.
TOLERANCE = 1e-4
# The same check in float64 on both sides (the first F64_ITEMS items, our tokens): without float32
# rounding, the two implementations must agree to F64_TOLERANCE.
F64_ITEMS = 32
F64_TOLERANCE = 1e-5


def write_lmeval_tasks(folder: Path, name: str, items: list[dict], choices: list[str], stops: list[str],
                       max_gen_toks: int) -> tuple[str, str]:
    """Our eval items as two lm-eval tasks: multiple_choice (labels as choices) and generate_until.

    The prompt is OUR rendered chat text (no --apply_chat_template, no description, no delimiter), so
    lm-eval's context is byte for byte the text our scorer scores after.
    """
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    common = {"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}}, "test_split": "test",
              "doc_to_text": "prompt", "target_delimiter": "", "fewshot_delimiter": "", "num_fewshot": 0,
              "metadata": {"version": 1.0}}
    mc, gen = f"seedloop_{name}_mc", f"seedloop_{name}_gen"
    (folder / f"{mc}.yaml").write_text(yaml.safe_dump({
        "task": mc, **common, "output_type": "multiple_choice", "doc_to_choice": choices, "doc_to_target": "gold",
        "metric_list": [{"metric": "acc"}]}, sort_keys=False))
    (folder / f"{gen}.yaml").write_text(yaml.safe_dump({
        "task": gen, **common, "output_type": "generate_until", "doc_to_target": "label",
        "generation_kwargs": {"until": stops, "max_gen_toks": max_gen_toks, "do_sample": False},
        "metric_list": [{"metric": "exact_match"}]}, sort_keys=False))
    return mc, gen


def token_facts(tokenizer, texts: list[str], choices: list[str], stock_cont: list[list[list[int]]]) -> dict:
    """What tokens each side scores, per item and choice, from the same tokenizer.

    apart: the prompt's ids, then the choice's ids, each encoded alone. joint: the ids of prompt + choice
    after the prompt's ids (our scorer's encoding since issue 23, `chat.choice_tokens`; `joint_same`
    counts the pairs where it equals "apart": our prompts end in "\\n\\n"). lm-eval stock: `_encode_pair`
    moves the prompt's trailing whitespace ("\\n\\n") into the continuation, so it scores those tokens too:
    the same for every choice of an item, a constant that cancels in choice-minus-choice differences.
    """
    prompt_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    choice_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
    joint_same = stock_moved = 0
    moved: set[str] = set()
    for text, ids, conts in zip(texts, prompt_ids, stock_cont, strict=True):
        heads = set()
        for choice, cids, cont in zip(choices, choice_ids, conts, strict=True):
            joint_same += tokenizer(text + choice, add_special_tokens=False)["input_ids"][len(ids):] == cids
            # the moved tokens, or None where the continuation does not end in exactly our choice tokens
            heads.add(tuple(cont[: len(cont) - len(cids)]) if cont[len(cont) - len(cids):] == cids else None)
        if len(heads) == 1 and None not in heads:  # every choice: the same moved tokens, then our choice tokens
            stock_moved += 1
            moved.add(tokenizer.decode(list(heads.pop())))
    return {"pairs": len(texts) * len(choices), "joint_same": joint_same, "items": len(texts),
            "stock_moved": stock_moved, "moved": sorted(moved), "choice_ids": choice_ids, "prompt_ids": prompt_ids}


@dataclass
class ScoringInputs:
    """What both sides of one scoring comparison are given, made before any server starts."""

    model: str  # an offline model's name (a tiny one or a packaged one: backends.models.resolve_model)
    folder: Path  # its model folder, which both sides load
    task: Task
    records: list[Record]  # every usable fin_sentiment sample row, en + vi: the bench's eval split
    messages: list[list[dict]]  # our score-mode prompts, one per record
    choices: list[str]  # the strings both sides score after each prompt, one per label, in label order
    tokenizer: Any
    stops: list[str]  # the model's end-of-turn text(s): lm-eval's generate_until stops there

    @property
    def tag(self) -> str:
        return self.model.replace("-", "_")


def scoring_inputs(model_name: str) -> ScoringInputs:
    """The fin_sentiment eval items, prompts, choices and stops for `model_name`'s folder."""
    task = load_task("fin_sentiment")
    records = _records(task)
    # lm-eval's multiple_choice scores each choice right after the context: a bare string per label.
    # A task that scores its labels inside a JSON answer (before/after) would not compare like for like.
    scored = score_choices(task)
    if scored.frame():
        raise ValueError(f"{task.name} scores its labels inside an answer frame {scored.frame()}: the peers "
                         "bench compares bare labels only")
    folder = Path(resolve_model(model_name))
    tokenizer = load_tokenizer(str(folder))
    eos = json.loads((folder / "generation_config.json").read_text())["eos_token_id"]
    return ScoringInputs(model=model_name, folder=folder, task=task, records=records,
                         messages=tuned_prompts(task, records), choices=list(scored.choices), tokenizer=tokenizer,
                         stops=[tokenizer.decode([i]) for i in (eos if isinstance(eos, list) else [eos])])


@dataclass
class LmevalRequests:
    """What lm-eval is sent for our eval items: its two task files, and the token ids of its "ids" encoding."""

    items: list[dict]  # the task files' data rows: id, our rendered prompt, label, gold (the label's index)
    mc: str  # the multiple_choice task's name
    gen: str  # the generate_until task's name
    folder: Path  # where the task files are (lmeval_load's `tasks`)
    pairs: list[list]  # lmeval_encode's [context, continuation, context ids, continuation ids], item by choice


def lmeval_requests(inputs: ScoringInputs, texts: list[str], folder: Path) -> LmevalRequests:
    """Write lm-eval's task files for `texts` (our rendered prompts, one per record) into `folder`, and
    pair every prompt and choice with the tokens our scorer scores there.

    The pairs are `backends.chat.choice_tokens`' split, the one `TransformersBackend.score` uses (the
    prompt and choice tokenised together, split by characters), so lm-eval's "ids" encoding scores
    exactly our tokens.
    """
    task = inputs.task
    items = [{"id": r.id, "prompt": t, "label": r.labels[task.label_name],
              "gold": task.label_names.index(r.labels[task.label_name])}
             for r, t in zip(inputs.records, texts, strict=True)]
    mc, gen = write_lmeval_tasks(folder, inputs.tag, items, inputs.choices, inputs.stops, task.max_new_tokens())
    pairs = [[text, choice, ids[: len(ids) - n], ids[len(ids) - n:]]
             for text in texts
             for choice, (ids, n) in zip(inputs.choices, chat.choice_tokens(inputs.tokenizer, text, inputs.choices),
                                         strict=True)]
    return LmevalRequests(items=items, mc=mc, gen=gen, folder=folder, pairs=pairs)


def scoring_rows(model_name: str) -> list[BenchRow]:
    inputs = scoring_inputs(model_name)
    task, records, messages, choices, tokenizer = (inputs.task, inputs.records, inputs.messages, inputs.choices,
                                                   inputs.tokenizer)
    tag, stops = inputs.tag, inputs.stops
    rows: list[BenchRow] = []
    load_before = load_avg()
    with both_sides(f"scoring-{model_name}") as (ours, peer):
        ours("load", model=str(inputs.folder), batch=EVAL_BATCH, threads=THREADS)
        texts = ours("inputs", messages=messages)["texts"]
        lmeval = lmeval_requests(inputs, texts, WORK / "tasks" / tag)
        items, mc, gen = lmeval.items, lmeval.mc, lmeval.gen
        their_load = peer("lmeval_load", model=str(inputs.folder), batch=EVAL_BATCH, tasks=str(lmeval.folder),
                          threads=THREADS)
        # lm-eval's "ids" encoding: the same tokens our scorer scores, through lm-eval's own loglikelihood.
        peer("lmeval_encode", pairs=lmeval.pairs)
        ours("predict", messages=messages[:EVAL_BATCH], mode="score", batch=EVAL_BATCH)  # warm-up
        # lm-eval's rounds: stock, then our tokens, then stock again (its runs are minutes here, so the
        # same-token run is one of the rounds). Both kinds make the same forward passes (8 batches of
        # 16 prompts, the same positions: measured), the "ids" one without its own tokenising; its time
        # is the best of all its runs, the kinder choice for the peer.
        runs: list[dict] = []

        def lmeval_round() -> dict:
            encode = "ids" if len(runs) == 1 else "stock"
            runs.append({**peer("lmeval_run", task=mc, encode=encode), "encode": encode})
            return runs[-1]

        scored = alternate(ROUNDS, {
            "ours": lambda: ours("predict", messages=messages, mode="score", batch=EVAL_BATCH),
            "lmeval": lmeval_round})
        stock_runs = [r for r in scored["lmeval"] if r["encode"] == "stock"]
        same_tokens = next((r for r in scored["lmeval"] if r["encode"] == "ids"), None)
        if same_tokens is None:  # ROUNDS == 1
            same_tokens = peer("lmeval_run", task=mc, encode="ids")
        stock = stock_runs[0]
        for doc, text, item in zip(stock["docs"], texts, items, strict=True):
            assert doc["id"] == item["id"], f"lm-eval's doc order differs at {item['id']}"
            assert doc["contexts"] == [text] * len(choices), f"{doc['id']}: lm-eval's context is not our prompt"
        facts = token_facts(tokenizer, texts, choices, [doc["cont_ids"] for doc in stock["docs"]])
        generated = alternate(ROUNDS, {
            "constrained": lambda: ours("predict", messages=messages, mode="constrained", batch=EVAL_BATCH),
            "free": lambda: ours("predict", messages=messages, mode="free", batch=EVAL_BATCH),
            "lmeval": lambda: peer("lmeval_run", task=gen)})
        ours("dtype", name="float64")
        peer("lmeval_dtype", name="float64")
        wide_ours = ours("predict", messages=messages[:F64_ITEMS], mode="score", batch=EVAL_BATCH)["scores"]
        wide_theirs = [doc["loglik"] for doc in peer("lmeval_run", task=mc, encode="ids", limit=F64_ITEMS)["docs"]]
    load_after = load_avg()

    n = len(records)
    ours_ll = best(scored["ours"])["scores"]
    stock_ll = [doc["loglik"] for doc in stock["docs"]]
    ids_ll = [doc["loglik"] for doc in same_tokens["docs"]]
    abs_diff = max(abs(x - y) for a, b in zip(ours_ll, ids_ll, strict=True) for x, y in zip(a, b, strict=True))
    rel_diff = max(abs((a[j] - a[0]) - (b[j] - b[0])) for a, b in zip(ours_ll, stock_ll, strict=True)
                   for j in range(len(choices)))
    offsets = [b[0] - a[0] for a, b in zip(ours_ll, stock_ll, strict=True)]
    argmax = sum(max(range(len(a)), key=lambda i: (a[i], -i)) == max(range(len(b)), key=lambda i: (b[i], -i))
                 for a, b in zip(ours_ll, stock_ll, strict=True))
    o, t = best(scored["ours"]), best(scored["lmeval"], "engine_s")
    settings = (f"{model_name} model folder, the {n} fin_sentiment sample items (en + vi, our score-mode "
                f"prompt rendered by our chat template; lm-eval's context asserted byte-identical), choices "
                f"{choices}, batch {EVAL_BATCH} both, 1 CPU thread each, best of {ROUNDS} alternated; load avg "
                f"{load_before} -> {load_after} on {os.cpu_count()} cores")
    rows.append(BenchRow(
        f"peers.score_{tag}_vs_lmeval_loglikelihood_items_per_s", n / o["seconds"], n / t["engine_s"],
        ratio(o["seconds"], t["engine_s"], higher_is_better=False), 1.0, "items/s",
        f"ours: evaluator predict(mode='score') (TransformersBackend.score: the prompt batch once, KV cache, "
        f"log-softmax only where a choice token is predicted); baseline: lm-eval {their_load['lm_eval']} hf "
        f"model, multiple_choice task: time inside HFLM.loglikelihood (simple_evaluate in all "
        f"{t['seconds']:.2f} s: task and dataset setup, metrics; best of its {len(scored['lmeval'])} runs, this one "
        f"{t['encode']}). Accuracy {sum(p == it['label'] for p, it in zip(o['labels'], items, strict=True)) / n:.2f} "
        f"vs {t['metrics'].get('acc,none', float('nan')):.2f}. {settings}"))
    rows.append(BenchRow(
        f"peers.score_{tag}_peak_rss_vs_lmeval_mb", o["peak_rss_mb"], t["peak_rss_mb"],
        ratio(o["peak_rss_mb"], t["peak_rss_mb"], higher_is_better=False), None, "MB",
        "peak RSS of each side's process during its best scoring round (VmHWM reset before the call)"))
    rows.append(BenchRow(
        f"peers.score_{tag}_loglik_same_tokens_max_abs_diff", abs_diff, TOLERANCE, ratio(TOLERANCE, abs_diff), 1.0,
        "nats",
        f"agreement check (absolute): max over all {n} items x {len(choices)} choices of |our log P(choice | "
        f"prompt) - lm-eval's|, lm-eval's HFLM scoring exactly our tokens (its _encode_pair returns our "
        f"prompt ids and choice ids, split as our scorer splits them: chat.choice_tokens; the stock one moves "
        f"the prompt's trailing {facts['moved']} into the continuation, see the next row). Met when <= "
        f"{TOLERANCE:g} on every item. Our joint encoding (prompt + choice, split after the prompt's tokens) "
        f"equals prompt and choice encoded apart on {facts['joint_same']}/{facts['pairs']} pairs"))
    wide_diff = max(abs(x - y) for a, b in zip(wide_ours, wide_theirs, strict=True) for x, y in zip(a, b, strict=True))
    rows.append(BenchRow(
        f"peers.score_{tag}_loglik_same_tokens_float64_max_abs_diff", wide_diff, F64_TOLERANCE,
        ratio(F64_TOLERANCE, wide_diff), 1.0, "nats",
        f"the same-tokens agreement check with both models cast to float64 (ours: the backend's weights; "
        f"lm-eval: HFLM's, its log-softmax then in float64 too), on the first {len(wide_ours)} items x "
        f"{len(choices)} choices: max |ours - lm-eval's|. Met when <= {F64_TOLERANCE:g}: the float32 rows' "
        f"differences are rounding over different batch shapes, not different arithmetic"))
    rows.append(BenchRow(
        f"peers.score_{tag}_loglik_stock_choice_diff_max_abs_diff", rel_diff, TOLERANCE, ratio(TOLERANCE, rel_diff),
        1.0, "nats",
        f"agreement check against stock lm-eval: max |(ours[c] - ours[0]) - (lm-eval[c] - lm-eval[0])| over every "
        f"item and choice c. Stock lm-eval scores {facts['moved']} + the choice tokens: on "
        f"{facts['stock_moved']}/{facts['items']} items every choice's continuation is the same moved tokens "
        f"followed by exactly our choice tokens, so its log-likelihood is ours plus log P(moved | prompt), the "
        f"same for every choice (lm-eval - ours: {min(offsets):.3f} .. {max(offsets):.3f} nats per item), which "
        f"cancels in differences; same argmax on {argmax}/{n} items"))
    best_con, best_free = best(generated["constrained"]), best(generated["free"])
    t_gen = best(generated["lmeval"], "engine_s")
    rows.append(BenchRow(
        f"peers.constrained_{tag}_vs_lmeval_generate_until_items_per_s", n / best_con["seconds"],
        n / t_gen["engine_s"], ratio(best_con["seconds"], t_gen["engine_s"], higher_is_better=False), 1.0, "items/s",
        f"ours: predict(mode='constrained') (the label as an enum through the schema's constraint, stops when it "
        f"closes); baseline: lm-eval generate_until, greedy, until {stops}, max_gen_toks {task.max_new_tokens()} "
        f"(time inside HFLM.generate_until). Accuracy "
        f"{sum(p == it['label'] for p, it in zip(best_con['labels'], items, strict=True)) / n:.2f} vs lm-eval "
        f"exact_match {t_gen['metrics'].get('exact_match,none', float('nan')):.2f}. {settings}"))
    same_text = sum(a == b["text"] for a, b in zip(best_free["raw"], t_gen["docs"], strict=True))
    rows.append(BenchRow(
        f"peers.free_{tag}_vs_lmeval_generate_until_items_per_s", n / best_free["seconds"], n / t_gen["engine_s"],
        ratio(best_free["seconds"], t_gen["engine_s"], higher_is_better=False), None, "items/s",
        f"the same work on both sides: ours predict(mode='free') (greedy, {task.max_new_tokens()} new tokens, "
        f"continuous batching) vs lm-eval generate_until; agreement check: the generated text is identical on "
        f"{same_text}/{n} items"))
    dump(f"scoring-{model_name}", {"ours": scored["ours"], "lmeval": scored["lmeval"],
                                    "lmeval_same_tokens": same_tokens, "generated": generated,
                                    "facts": {k: v for k, v in facts.items() if k not in ("prompt_ids",)}})
    return rows
