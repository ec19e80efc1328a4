"""Side by side with the tools a user would otherwise install: distilabel (generation) and
lm-evaluation-harness (scoring), same model folder, same prompts, same settings.

    python -m bench peers        # or `make bench-peers`; SLOW: plain `make bench` leaves it out

The peers' pins conflict with ours (outlines < 1, setuptools < 81, datasketch 1.7), so they live in
their own virtual environment, `.venv-peers` in the repository root, made once from
bench/peers-requirements.txt (torch==2.13.0 first) and reused while that file is unchanged. Each side
runs as a server process (bench/peers_side/peer.py in the peers' venv, bench/peers_ours.py in ours);
this driver sends both the same inputs, alternates them round by round (the order flips every
round), takes the best of ROUNDS, checks that the outputs agree and writes the rows. What each row
compares, the numbers, and why: docs/benchmarks.md#against-the-peers--python--m-bench-peers

Settings (environment): SEEDLOOP_PEERS_ROUNDS (default 3), SEEDLOOP_PEERS_SCORING (scoring models,
default tiny-llama3; "tiny-llama3,tiny" adds the 4k-vocabulary one), SEEDLOOP_PEERS_PIPELINE=0 (skip
distilabel's as-shipped Pipeline run). Inputs, task YAMLs, per-item outputs and each side's log:
runs/bench-peers/.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends import chat, parse_with_schema
from backends.models import REPO_ROOT, TINY, TINY_LLAMA3, load_tokenizer, tiny_model_path
from bench import BenchRow, ratio
from bench.bench_evaluator import _records
from bench.bench_generation import seed_plans
from core.records import Record
from core.task_spec import Task
from core.tasks import load_task
from evaluator.prompts import score_choices, tuned_prompts

SLOW = True  # builds a 2 GB virtual environment on first use, then minutes of peer runs
HERE = Path(__file__).resolve().parent
VENV = REPO_ROOT / ".venv-peers"
REQUIREMENTS = HERE / "peers-requirements.txt"
PEER = HERE / "peers_side" / "peer.py"
WORK = REPO_ROOT / "runs" / "bench-peers"  # inputs, task YAMLs, both sides' outputs and logs, for inspection

ROUNDS = int(os.environ.get("SEEDLOOP_PEERS_ROUNDS", "3"))
THREADS = 1  # both sides, one CPU thread each: the machine is shared, and the ratio is what counts
N_GEN = 16  # generation prompts (the Planner's first 16 fin_sentiment plans)
GEN_BATCH = 8  # our decoding slots; distilabel as shipped runs one prompt at a time
N_GREEDY = 8  # prompts for the greedy same-text check
EVAL_BATCH = 16  # both sides' scoring batch
# Scoring models: the Llama-3-shaped tiny model (128k vocabulary, like the models users score); add
# "tiny" (4k vocabulary) with SEEDLOOP_PEERS_SCORING=tiny-llama3,tiny.
SCORING = os.environ.get("SEEDLOOP_PEERS_SCORING", TINY_LLAMA3).split(",")
# distilabel as shipped inside its Pipeline too (its step subprocess loads the model again: ~30 s here);
# SEEDLOOP_PEERS_PIPELINE=0 leaves it out.
PIPELINE = os.environ.get("SEEDLOOP_PEERS_PIPELINE", "1") != "0"
DEDUP_THRESHOLD, DEDUP_N = 0.7, 5  # our near_duplicates threshold; distilabel's character n-gram default
# Per-item, per-choice log-likelihood agreement, in nats. Both sides compute float32 log-softmax of
# the same logits, but over different batch shapes and paddings (lm-eval: right-padded rows without
# attention mask; ours: left-padded prompts, a KV cache, choices on top), so they agree to float32
# rounding (~1e-6 measured), not bit for bit; 1e-4 is far below any difference between two labels.
TOLERANCE = 1e-4


# ---- the peers' virtual environment ------------------------------------------------------------
def peers_python() -> Path:
    """`.venv-peers/bin/python`, creating the venv first when it is missing or its pins changed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.is_file() and stamp.read_text() == digest:
        return python
    start = time.perf_counter()
    print(f"   creating {VENV} from {REQUIREMENTS.name} (once; a few minutes)", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # --no-compile: byte-compiling 2 GB of packages at install is most of its CPU; imports compile what they use.
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    # torch first, the local CPU build: a resolver left to pick it would pull a multi-GB CUDA one.
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)
    print(f"   {VENV.name} ready in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return python


def request_line(op: str, **args: Any) -> str:
    """One request of the protocol (bench/peers_side/protocol.py): `op` and its arguments as one JSON line."""
    return json.dumps({"op": op, **args}, ensure_ascii=False) + "\n"


class Server:
    """One side's server process: `server(op, **args)` sends a request and returns its result."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        self.name = name
        WORK.mkdir(parents=True, exist_ok=True)
        self.log = WORK / f"{name}.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, encoding="utf-8", cwd=REPO_ROOT, env=env)

    def __call__(self, op: str, **args: Any) -> Any:
        self.send(op, **args)
        return self.receive(op)

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(request_line(op, **args))
        self.proc.stdin.flush()

    def receive(self, op: str) -> Any:
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited during {op}: {self._tail()}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"{self.name}: {reply['error']}\n{self._tail()}")
        return reply["result"]

    def _tail(self) -> str:
        self._log.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _env(peers: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_DATASETS_CACHE=str(WORK / "hf-datasets"), DISTILABEL_CACHE_DIR=str(WORK / "distilabel"),
               PYTHONUNBUFFERED="1")
    if not peers:
        env["PYTHONPATH"] = str(REPO_ROOT)  # our packages from this checkout; the peers' side gets none
    return env


def peer_server(name: str) -> Server:
    return Server(f"peer-{name}", [str(peers_python()), str(PEER)], _env(peers=True))


def our_server(name: str) -> Server:
    return Server(f"ours-{name}", [sys.executable, "-m", "bench.peers_ours"], _env(peers=False))


def started(*servers: Server) -> None:
    """Both sides import their libraries at the same time (untimed), so neither side's timed load
    competes with the other's imports."""
    for server in servers:
        server.send("imports")
    for server in servers:
        server.receive("imports")


def alternate(rounds: int, calls: dict[str, Any]) -> dict[str, list[Any]]:
    """Each call once per round, the order reversed every other round; every result kept, in call order."""
    results: dict[str, list[Any]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(calls[name]())
    return results


def best(results: list[dict], key: str = "seconds") -> dict:
    return min(results, key=lambda r: r[key])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5-min {five:.1f})"


# ---- inputs ------------------------------------------------------------------------------------
def generation_inputs(task) -> tuple[list[list[dict]], list[int], dict]:
    """The first N_GEN plans of our Planner (en, run seed 0): messages, per-row seeds, sampling."""
    plans = seed_plans(task, N_GEN)
    samplings = {(p.sampling.temperature, p.sampling.top_p, p.sampling.max_new_tokens) for p in plans}
    assert len(samplings) == 1, samplings
    temperature, top_p, max_new_tokens = samplings.pop()
    return ([p.messages for p in plans], [p.sampling.seed for p in plans],
            {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens})


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


# ---- generation: distilabel ----------------------------------------------------------------------
def generation_rows() -> list[BenchRow]:
    task = load_task("fin_sentiment")
    schema_model = task.generation_schema()
    schema = schema_model.model_json_schema()
    messages, seeds, sampling = generation_inputs(task)
    model = str(tiny_model_path(name=TINY))
    rows: list[BenchRow] = []
    load_before = _load()
    with our_server("generation") as ours, peer_server("generation") as peer:
        started(ours, peer)
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
    load_after = _load()

    o, d, d8 = best(runs["ours"]), best(runs["distilabel"]), best(runs["distilabel_b8"])
    n = len(messages)

    def per_s(result: dict, extra: float = 0.0) -> float:
        return len(result["parsed"]) / (result["seconds"] + extra)

    same_greedy = sum(x == y for x, y in zip(greedy_ours["texts"], greedy_theirs["texts"], strict=True))
    settings = (f"tiny model folder, {n} Planner prompts (fin_sentiment en, byte-identical text and token ids "
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
        "peers.generation_vs_distilabel_parsed_per_s", per_s(o), per_s(d), ratio(per_s(o), per_s(d)), 1.0,
        "parsed rows/s",
        f"ours: TransformersBackend.generate (batch {GEN_BATCH}, continuous batching, per-row seeds); baseline: "
        f"distilabel {their_load['distilabel']} TransformersLLM.generate with structured_output json (outlines "
        f"{their_load['outlines']}), as shipped: one model.generate per prompt. Parsed {len(o['parsed'])}/{n} vs "
        f"{len(d['parsed'])}/{n}; tokens/s {sum(o['tokens']) / o['seconds']:.0f} vs "
        f"{sum(d['tokens']) / d['seconds']:.0f}. {patch}. {settings}"))
    rows.append(BenchRow(
        "peers.generation_vs_distilabel_batch8_parsed_per_s", per_s(o), per_s(d8), ratio(per_s(o), per_s(d8)), 1.0,
        "parsed rows/s",
        f"baseline: distilabel with its HF pipeline's batch size set to {GEN_BATCH} (left padding), which "
        f"TransformersLLM never does itself; parsed {len(d8['parsed'])}/{n}. {settings}"))
    share_o, share_d = len(o["parsed"]) / n, len(d["parsed"]) / n
    limit = schema["properties"]["text"]["maxLength"]
    failed = [t for t in d["texts"] if parse_with_schema(t, schema_model)[0] is None]
    long = sum(len(_field(t, "text")) > limit and "\ufffd" in _field(t, "text") for t in failed)
    rows.append(BenchRow(
        "peers.generation_parse_share_vs_distilabel", share_o, share_d, ratio(share_o, share_d), None, "share",
        "rows that parse under the task's generation schema (our pydantic model, the same parser for both "
        f"sides); of distilabel's {len(failed)} misses, {long} are JSON whose text is over maxLength={limit} "
        "characters and holds U+FFFD: Outlines 0.2's regex counts a token of broken UTF-8 bytes as one "
        "character where the decoded text has more"))
    rows.append(BenchRow(
        "peers.generation_peak_rss_vs_distilabel_mb", o["peak_rss_mb"], d["peak_rss_mb"],
        ratio(o["peak_rss_mb"], d["peak_rss_mb"], higher_is_better=False), None, "MB",
        "peak RSS of each side's own process (model, libraries, compiled schema) during its best generate "
        "round (VmHWM reset before the call)"))
    rows.append(BenchRow(
        "peers.generation_load_vs_distilabel_s", our_load["load_s"], their_load["load_s"],
        ratio(our_load["load_s"], their_load["load_s"], higher_is_better=False), None, "s",
        "model load + the schema's constraint compiled (ours: Outlines-core 0.2 index; distilabel's "
        "TransformersLLM.load: HF pipeline + Outlines 0.2 regex FSM), once per process"))
    rows.append(BenchRow(
        "peers.generation_greedy_same_text_vs_distilabel", same_greedy / N_GREEDY, 1.0, same_greedy / N_GREEDY,
        None, "share",
        f"agreement check: both sides greedy on the first {N_GREEDY} prompts; {same_greedy}/{N_GREEDY} texts "
        "identical (sampled rows cannot match: distilabel has one global torch seed, ours one per row)"))
    o_dd, d_dd = own["ours"]["seconds"], own["distilabel"]["seconds"]
    rows.append(BenchRow(
        "peers.generation_with_dedup_vs_distilabel_parsed_per_s", per_s(o, o_dd), per_s(d, d_dd),
        ratio(per_s(o, o_dd), per_s(d, d_dd)), 1.0, "parsed rows/s",
        f"the generation row plus each side's dedup of its own parsed rows (ours: near_duplicates validator "
        f"{o_dd * 1000:.1f} ms; distilabel: MinHashDedup.process {d_dd * 1000:.1f} ms, its load() apart). "
        "distilabel's dedup only compares rows with each other: it has no eval/seed references (contamination, "
        "seed copies), no exact-copy check for texts too short to shingle, and no candidate verification"))
    od, dd = best(dedup["ours"]), best(dedup["distilabel"])
    agree = sum(x == y for x, y in zip(od["keep"], dd["keep"], strict=True))
    rows.append(BenchRow(
        "peers.dedup_vs_distilabel_minhash_ms", od["seconds"] * 1000, dd["seconds"] * 1000,
        ratio(od["seconds"], dd["seconds"], higher_is_better=False), None, "ms",
        f"the same {len(same)} rows (both sides' parsed rows + the 60 en sample rows with planted copies), "
        f"character {DEDUP_N}-grams (distilabel's 'words' tokenizer needs an nltk download), threshold "
        f"{DEDUP_THRESHOLD}, 128 permutations. Ours: near_duplicates.check (index built per call); distilabel: "
        f"MinHashDedup.process after load() ({dd['load_s'] * 1000:.0f} ms); first call in the process: ours "
        f"{od['first_s'] * 1000:.0f} ms. Kept {sum(od['keep'])} vs {sum(dd['keep'])}; same verdict on "
        f"{agree}/{len(same)} rows"))
    _dump("generation", {"stock": stock, "runs": runs, "greedy": [greedy_ours, greedy_theirs], "own_dedup": own,
                         "dedup": dedup, "load": [our_load, their_load]})
    return rows


def _field(text: str, name: str) -> str:
    try:
        value = json.loads(text).get(name, "")
    except (json.JSONDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


# ---- scoring: lm-evaluation-harness ------------------------------------------------------------
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

    model: str  # a tiny model's name (tiny_model_path)
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
    folder = tiny_model_path(name=model_name)
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
    load_before = _load()
    with our_server(f"scoring-{model_name}") as ours, peer_server(f"scoring-{model_name}") as peer:
        started(ours, peer)
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
    load_after = _load()

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
        f"prompt ids and choice ids; the stock one moves the prompt's trailing {facts['moved']} into the "
        f"continuation, see the next row). Met when <= {TOLERANCE:g} on every item. Our encoding (prompt and "
        f"choice apart) equals the joint one (prompt + choice, split after the prompt's tokens) on "
        f"{facts['joint_same']}/{facts['pairs']} pairs, so the check holds as it is for issue 23's joint encoding"))
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
    _dump(f"scoring-{model_name}", {"ours": scored["ours"], "lmeval": scored["lmeval"],
                                    "lmeval_same_tokens": same_tokens, "generated": generated,
                                    "facts": {k: v for k, v in facts.items() if k not in ("prompt_ids",)}})
    return rows


def _dump(name: str, data: dict) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{name}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def run() -> list[BenchRow]:
    import resource

    peers_python()  # the venv first, so its install time is not mistaken for a side's work
    rows: list[BenchRow] = []
    phases = [("generation", generation_rows)] + [(f"scoring {m}", lambda m=m: scoring_rows(m)) for m in SCORING]
    for name, phase in phases:
        start = time.perf_counter()
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        rows += phase()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
        print(f"   peers {name}: {time.perf_counter() - start:.0f} s wall, {used:.0f} s CPU in the two sides' "
              f"processes, load avg {_load()}", file=sys.stderr, flush=True)
    return rows
