"""The peers bench's generation side: our generation, then our near-duplicate check, against distilabel's
on the same Planner prompts (`python -m bench peers`, bench/bench_peers.py).

`generation_rows` runs both sides on the `tiny` model folder: the prompts asserted byte-identical,
distilabel as shipped (and in its Pipeline), then the timed rounds, the greedy same-text check and
both sides' dedup of the same rows. What each row compares: docs/benchmarks.md "Generation: distilabel".
"""

from __future__ import annotations

import json
import os
import time

from backends import parse_with_schema
from backends.models import REPO_ROOT, TINY, resolve_model
from bench import BenchRow, ratio
from bench.bench_generation import seed_plans
from bench.peers_harness import ROUNDS, THREADS, alternate, best, both_sides, dump, load_avg
from core.tasks import load_task

N_GEN = 16  # generation prompts (the Planner's first 16 fin_sentiment plans)
# Generation models: the tiny one; SEEDLOOP_PEERS_GENERATION=tiny,smollm2-135m adds the real model (its rows
# get the model's name as a suffix).
GENERATION = [m for m in os.environ.get("SEEDLOOP_PEERS_GENERATION", TINY).split(",") if m]
GEN_BATCH = 8  # our decoding slots; distilabel as shipped runs one prompt at a time
N_GREEDY = 8  # prompts for the greedy same-text check
# distilabel as shipped inside its Pipeline too (its step subprocess loads the model again: ~30 s here);
# SEEDLOOP_PEERS_PIPELINE=0 leaves it out.
PIPELINE = os.environ.get("SEEDLOOP_PEERS_PIPELINE", "1") != "0"
DEDUP_THRESHOLD, DEDUP_N = 0.7, 5  # our near_duplicates threshold; distilabel's character n-gram default


def generation_inputs(task) -> tuple[list[list[dict]], list[int], dict]:
    """The first N_GEN plans of our Planner (en, run seed 0): messages, per-row seeds, sampling."""
    plans = seed_plans(task, N_GEN)
    samplings = {(p.sampling.temperature, p.sampling.top_p, p.sampling.max_new_tokens) for p in plans}
    assert len(samplings) == 1, samplings
    temperature, top_p, max_new_tokens = samplings.pop()
    return ([p.messages for p in plans], [p.sampling.seed for p in plans],
            {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens})


# ---- generation: distilabel ----------------------------------------------------------------------
def generation_rows(model_name: str = TINY) -> list[BenchRow]:
    task = load_task("fin_sentiment")
    schema_model = task.generation_schema()
    schema = schema_model.model_json_schema()
    messages, seeds, sampling = generation_inputs(task)
    model = resolve_model(model_name)
    suffix = "" if model_name == TINY else f".{model_name}"
    rows: list[BenchRow] = []
    load_before = load_avg()
    with both_sides(f"generation{suffix}") as (ours, peer):
        our_load = ours("load", model=model, batch=GEN_BATCH, threads=THREADS, schema=True)
        their_load = peer("distilabel_load", model=model, schema=schema, threads=THREADS)
        a, b = ours("inputs", messages=messages), peer("distilabel_inputs", messages=messages)
        if a["texts"] != b["texts"] or a["ids"] != b["ids"]:
            bad = next(i for i in range(len(messages)) if a["texts"][i] != b["texts"][i] or a["ids"][i] != b["ids"][i])
            raise AssertionError(f"prompt {bad}: distilabel feeds other text/tokens than ours "
                                 f"({len(b['ids'][bad])} vs {len(a['ids'][bad])} tokens)")
        lengths = [len(ids) for ids in a["ids"]]
        # distilabel as shipped, first (nothing has run through its processor yet): two prompts of
        # different lengths through one TransformersLLM.generate call.
        pair = [0, next(i for i in range(1, len(lengths)) if lengths[i] != lengths[0])]
        stock = peer("distilabel_stock", messages=[messages[i] for i in pair], sampling=sampling)
        if PIPELINE:
            pipeline = peer("distilabel_pipeline", model=model, schema=schema, messages=messages, sampling=sampling)
            stock["pipeline"] = {"rows": pipeline["rows"], "seconds": pipeline["seconds"],
                                 "parsed": sum(parse_with_schema(t, schema_model)[0] is not None
                                               for t in pipeline["texts"])}
        # warm-up (first-call costs), then the greedy same-text check, then the timed rounds
        warm = {**sampling, "max_new_tokens": 8}
        ours("generate", messages=messages[:2], seeds=seeds[:2], sampling=warm, greedy=False)
        peer("distilabel_generate", messages=messages[:2], sampling=warm, batch=1, greedy=False, seed=0)
        greedy_ours = ours("generate", messages=messages[:N_GREEDY], seeds=seeds[:N_GREEDY], sampling=sampling,
                           greedy=True)
        greedy_theirs = peer("distilabel_generate", messages=messages[:N_GREEDY], sampling=sampling, batch=1,
                             greedy=True, seed=0)
        runs = alternate(ROUNDS, {
            "ours": lambda: ours("generate", messages=messages, seeds=seeds, sampling=sampling, greedy=False),
            "distilabel": lambda: peer("distilabel_generate", messages=messages, sampling=sampling, batch=1,
                                       greedy=False, seed=0),
            "distilabel_b8": lambda: peer("distilabel_generate", messages=messages, sampling=sampling,
                                          batch=GEN_BATCH, greedy=False, seed=0),
        })
        parsed: dict[str, list[str]] = {}
        for side, results in runs.items():
            for result in results:
                start = time.perf_counter()
                rows_ = [parse_with_schema(t, schema_model)[0] for t in result["texts"]]
                if side != "ours":  # "prompts in, parsed rows out": ours parses inside generate already
                    result["seconds"] += time.perf_counter() - start
                result["parsed"] = [r["text"] for r in rows_ if r is not None]
            parsed[side] = best(results)["parsed"]
        # Validation: each side deduplicates its own parsed rows (a pipeline's next step); then both
        # dedup the same rows: every side's parsed texts plus the 60 English sample rows, which hold
        # planted exact and near copies (data/samples/fin_sentiment/PLANTED.md).
        sample_texts = [json.loads(line)["text"] for line in
                        (REPO_ROOT / "data/samples/fin_sentiment/en.jsonl").read_text().splitlines()]
        own = {"ours": ours("dedup", texts=parsed["ours"], threshold=DEDUP_THRESHOLD, n=DEDUP_N),
               "distilabel": peer("distilabel_dedup", texts=parsed["distilabel"], threshold=DEDUP_THRESHOLD,
                                  n=DEDUP_N)}
        same = parsed["ours"] + parsed["distilabel"] + sample_texts
        dedup = alternate(ROUNDS, {
            "ours": lambda: ours("dedup", texts=same, threshold=DEDUP_THRESHOLD, n=DEDUP_N),
            "distilabel": lambda: peer("distilabel_dedup", texts=same, threshold=DEDUP_THRESHOLD, n=DEDUP_N)})
    load_after = load_avg()

    o, d, d8 = best(runs["ours"]), best(runs["distilabel"]), best(runs["distilabel_b8"])
    n = len(messages)

    def per_s(result: dict, extra: float = 0.0) -> float:
        return len(result["parsed"]) / (result["seconds"] + extra)

    same_greedy = sum(x == y for x, y in zip(greedy_ours["texts"], greedy_theirs["texts"], strict=True))
    settings = (f"{model_name} model folder, {n} Planner prompts (fin_sentiment en, byte-identical text and token ids "
                f"asserted), generation schema as compact JSON, temperature {sampling['temperature']}, top_p "
                f"{sampling['top_p']}, max_new_tokens {sampling['max_new_tokens']}, no top-k, no repetition penalty, "
                f"1 CPU thread each, best of {ROUNDS} alternated; load avg {load_before} -> {load_after} on "
                f"{os.cpu_count()} cores")
    in_pipeline = (f"run as a Pipeline(LoadDataFromDicts >> ChatGeneration), the run succeeds with "
                   f"{stock['pipeline']['parsed']} of {n} rows parsed: the step logs the error and returns empty "
                   f"generations" if "pipeline" in stock else "the Pipeline run was left out")
    patch = ("distilabel needed a patch to produce rows: as shipped (1.5.3 + outlines 0.2.3) it shares one "
             "Outlines processor across prompts, and a second prompt of another length "
             f"{'raised ' + stock['raised'] if stock['raised'] else 'gave ' + str(stock['rows']) + ' rows'} "
             f"({in_pipeline}); the bench resets the processor before each model.generate")
    rows.append(BenchRow(
        f"peers.generation_vs_distilabel_parsed_per_s{suffix}", per_s(o), per_s(d), ratio(per_s(o), per_s(d)), 1.0,
        "parsed rows/s",
        f"ours: TransformersBackend.generate (batch {GEN_BATCH}, continuous batching, per-row seeds); baseline: "
        f"distilabel {their_load['distilabel']} TransformersLLM.generate with structured_output json (outlines "
        f"{their_load['outlines']}), as shipped: one model.generate per prompt. Parsed {len(o['parsed'])}/{n} vs "
        f"{len(d['parsed'])}/{n}; tokens/s {sum(o['tokens']) / o['seconds']:.0f} vs "
        f"{sum(d['tokens']) / d['seconds']:.0f}. {patch}. {settings}"))
    rows.append(BenchRow(
        f"peers.generation_vs_distilabel_batch8_parsed_per_s{suffix}", per_s(o), per_s(d8), ratio(per_s(o), per_s(d8)), 1.0,
        "parsed rows/s",
        f"baseline: distilabel with its HF pipeline's batch size set to {GEN_BATCH} (left padding), which "
        f"TransformersLLM never does itself; parsed {len(d8['parsed'])}/{n}. {settings}"))
    share_o, share_d = len(o["parsed"]) / n, len(d["parsed"]) / n
    limit = schema["properties"]["text"]["maxLength"]
    failed = [t for t in d["texts"] if parse_with_schema(t, schema_model)[0] is None]
    long = sum(len(_field(t, "text")) > limit and "\ufffd" in _field(t, "text") for t in failed)
    rows.append(BenchRow(
        f"peers.generation_parse_share_vs_distilabel{suffix}", share_o, share_d, ratio(share_o, share_d), None, "share",
        "rows that parse under the task's generation schema (our pydantic model, the same parser for both "
        f"sides); of distilabel's {len(failed)} misses, {long} are JSON whose text is over maxLength={limit} "
        "characters and holds U+FFFD: Outlines 0.2's regex counts a token of broken UTF-8 bytes as one "
        "character where the decoded text has more"))
    rows.append(BenchRow(
        f"peers.generation_peak_rss_vs_distilabel_mb{suffix}", o["peak_rss_mb"], d["peak_rss_mb"],
        ratio(o["peak_rss_mb"], d["peak_rss_mb"], higher_is_better=False), None, "MB",
        "peak RSS of each side's own process (model, libraries, compiled schema) during its best generate "
        "round (VmHWM reset before the call)"))
    rows.append(BenchRow(
        f"peers.generation_load_vs_distilabel_s{suffix}", our_load["load_s"], their_load["load_s"],
        ratio(our_load["load_s"], their_load["load_s"], higher_is_better=False), None, "s",
        "model load + the schema's constraint compiled (ours: Outlines-core 0.2 index; distilabel's "
        "TransformersLLM.load: HF pipeline + Outlines 0.2 regex FSM), once per process"))
    rows.append(BenchRow(
        f"peers.generation_greedy_same_text_vs_distilabel{suffix}", same_greedy / N_GREEDY, 1.0, same_greedy / N_GREEDY,
        None, "share",
        f"agreement check: both sides greedy on the first {N_GREEDY} prompts; {same_greedy}/{N_GREEDY} texts "
        "identical (sampled rows cannot match: distilabel has one global torch seed, ours one per row)"))
    o_dd, d_dd = own["ours"]["seconds"], own["distilabel"]["seconds"]
    rows.append(BenchRow(
        f"peers.generation_with_dedup_vs_distilabel_parsed_per_s{suffix}", per_s(o, o_dd), per_s(d, d_dd),
        ratio(per_s(o, o_dd), per_s(d, d_dd)), 1.0, "parsed rows/s",
        f"the generation row plus each side's dedup of its own parsed rows (ours: near_duplicates validator "
        f"{o_dd * 1000:.1f} ms; distilabel: MinHashDedup.process {d_dd * 1000:.1f} ms, its load() apart). "
        "distilabel's dedup only compares rows with each other: it has no eval/seed references (contamination, "
        "seed copies), no exact-copy check for texts too short to shingle, and no candidate verification"))
    od, dd = best(dedup["ours"]), best(dedup["distilabel"])
    agree = sum(x == y for x, y in zip(od["keep"], dd["keep"], strict=True))
    rows.append(BenchRow(
        f"peers.dedup_vs_distilabel_minhash_ms{suffix}", od["seconds"] * 1000, dd["seconds"] * 1000,
        ratio(od["seconds"], dd["seconds"], higher_is_better=False), None, "ms",
        f"the same {len(same)} rows (both sides' parsed rows + the 60 en sample rows with planted copies), "
        f"character {DEDUP_N}-grams (distilabel's 'words' tokenizer needs an nltk download), threshold "
        f"{DEDUP_THRESHOLD}, 128 permutations. Ours: near_duplicates.check (index built per call); distilabel: "
        f"MinHashDedup.process after load() ({dd['load_s'] * 1000:.0f} ms); first call in the process: ours "
        f"{od['first_s'] * 1000:.0f} ms. Kept {sum(od['keep'])} vs {sum(dd['keep'])}; same verdict on "
        f"{agree}/{len(same)} rows"))
    dump(f"generation{suffix}", {"stock": stock, "runs": runs, "greedy": [greedy_ours, greedy_theirs], "own_dedup": own,
                         "dedup": dedup, "load": [our_load, their_load]})
    return rows


def _field(text: str, name: str) -> str:
    try:
        value = json.loads(text).get(name, "")
    except (json.JSONDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
