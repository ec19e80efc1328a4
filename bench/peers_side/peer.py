"""The peers' side of `python -m bench peers`: distilabel 1.5.3 and lm-evaluation-harness 0.4.13.

    .venv-peers/bin/python bench/peers_side/peer.py    # started by bench/bench_peers.py, never by hand

Runs ONLY in the peers' virtual environment (`.venv-peers`, bench/peers-requirements.txt): it imports
distilabel, outlines 0.2 and lm_eval, and nothing of this repository (our packages need outlines 1.x).
It is a small server: one JSON request per line on stdin ({"op": ..., ...}), one JSON reply per line on
stdout ({"ok": true, "result": ...} or {"ok": false, "error": ...}); everything the libraries print
goes to stderr. Each reply times its own work (time.perf_counter around the peer's call only) and
gives the process's peak RSS during it, so the driver alternates the two sides without timing IPC.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

from protocol import serve, timed  # beside this file (python puts a script's folder on sys.path)

STATE: dict[str, Any] = {}


# ---- distilabel: TransformersLLM with structured output through Outlines ------------------------
def distilabel_load(model: str, schema: dict, threads: int) -> dict:
    """TransformersLLM on the local folder, JSON-schema structured output (compact JSON, as ours).

    distilabel 1.5.3 builds ONE Outlines 0.x logits processor in `load()` and passes it to every
    `model.generate`; the processor keeps the prompt length of its first call (`_seq_start_idx`), so
    the next prompt of another length raises KeyError. `generate` below is wrapped to reset that state
    before each `model.generate` while STATE["fix"] is true (see `distilabel_stock`).
    """
    import torch
    from distilabel.models.llms import TransformersLLM

    torch.set_num_threads(threads)
    llm = TransformersLLM(model=model, device="cpu", torch_dtype="float32",
                          structured_output={"format": "json", "schema": schema, "whitespace_pattern": ""})
    seconds, peak, _ = timed(llm.load)  # the HF pipeline and Outlines 0.2's regex compile of the schema
    hf_model = llm._pipeline.model
    original = hf_model.generate

    def generate(*args, **kwargs):
        if STATE.get("fix"):
            for proc in llm._logits_processor or []:
                proc._seq_start_idx = None
                proc._guide_states = {hash(()): proc.guide.initial_state}
        return original(*args, **kwargs)

    hf_model.generate = generate
    STATE.update(llm=llm, fix=False)
    return {"load_s": seconds, "peak_rss_mb": peak, "distilabel": version("distilabel"), "outlines": version("outlines")}


def distilabel_inputs(messages: list[list[dict]]) -> dict:
    """The exact text and token ids distilabel feeds the model for each chat prompt."""
    llm = STATE["llm"]
    texts = [llm.prepare_input(input=m) for m in messages]
    ids = [llm._pipeline.preprocess(t)["input_ids"][0].tolist() for t in texts]
    return {"texts": texts, "ids": ids}


def _gen_kwargs(sampling: dict, greedy: bool) -> dict:
    # distilabel's own defaults are repetition_penalty=1.1 and top_k=0: set to ours (1.0, no top-k).
    kwargs = {"max_new_tokens": sampling["max_new_tokens"], "top_k": 0, "repetition_penalty": 1.0}
    if greedy:
        kwargs.update(do_sample=False, temperature=1.0, top_p=1.0)
    else:
        kwargs.update(do_sample=True, temperature=sampling["temperature"], top_p=sampling["top_p"])
    return kwargs


def distilabel_stock(messages: list[list[dict]], sampling: dict) -> dict:
    """distilabel as shipped (no reset) on prompts of different lengths: what comes back, or what it raises."""
    import torch

    llm = STATE["llm"]
    STATE["fix"] = False
    torch.manual_seed(0)
    try:
        outputs = llm.generate(inputs=messages, **_gen_kwargs(sampling, greedy=False))
        return {"raised": None, "rows": sum(bool(o["generations"][0]) for o in outputs)}
    except Exception as exc:
        return {"raised": f"{type(exc).__name__}: {str(exc)[:120]}", "rows": 0}
    finally:
        STATE["fix"] = True


def distilabel_pipeline(model: str, schema: dict, messages: list[list[dict]], sampling: dict) -> dict:
    """distilabel as a user runs it, as shipped: Pipeline(LoadDataFromDicts >> ChatGeneration(TransformersLLM)).

    The step runs in distilabel's own subprocess, where an exception inside `generate` is logged and the
    batch comes back as empty generations: this counts the rows that come out.
    """
    from distilabel.models.llms import TransformersLLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import ChatGeneration

    data = [{"messages": m} for m in messages]
    with Pipeline(name="seedloop-bench-peers") as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=len(data))
        chat = ChatGeneration(llm=TransformersLLM(model=model, device="cpu", torch_dtype="float32",
                                                  structured_output={"format": "json", "schema": schema,
                                                                     "whitespace_pattern": ""}),
                              input_batch_size=len(data))
        load >> chat
    kwargs = {k: v for k, v in _gen_kwargs(sampling, greedy=False).items() if k != "do_sample"}
    seconds, _, distiset = timed(lambda: pipeline.run(use_cache=False, parameters={
        chat.name: {"llm": {"generation_kwargs": kwargs}}}))
    texts = [t or "" for t in distiset["default"]["train"]["generation"]]
    return {"seconds": seconds, "rows": len(texts), "texts": texts}


def distilabel_generate(messages: list[list[dict]], sampling: dict, batch: int, greedy: bool, seed: int) -> dict:
    """`TransformersLLM.generate` (what a distilabel generation Task's `process` calls), timed.

    batch 1 is distilabel as shipped (it never passes batch_size to the HF pipeline: one
    `model.generate` per prompt); batch > 1 sets the pipeline's batch size (left padding).
    distilabel has no per-row seed: one torch.manual_seed for the call.
    """
    import torch

    llm = STATE["llm"]
    STATE["fix"] = True
    llm._pipeline._batch_size = batch if batch > 1 else None
    llm._pipeline.tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    seconds, peak, outputs = timed(lambda: llm.generate(inputs=messages, **_gen_kwargs(sampling, greedy)))
    return {"seconds": seconds, "peak_rss_mb": peak, "texts": [o["generations"][0] or "" for o in outputs],
            "tokens": [o["statistics"]["output_tokens"][0] for o in outputs]}


def distilabel_dedup(texts: list[str], threshold: float, n: int) -> dict:
    """distilabel's MinHashDedup step (character n-grams: its "words" tokenizer needs an nltk download)."""
    from distilabel.steps import MinHashDedup

    step = MinHashDedup(tokenizer="ngrams", n=n, threshold=threshold, storage="dict")
    load_s, _, _ = timed(step.load)  # builds the MinHashLSH index (datasketch's band search)

    def process():
        return [row for batch in step.process([{"text": t} for t in texts]) for row in batch]

    seconds, _, rows = timed(process)
    return {"load_s": load_s, "seconds": seconds, "keep": [r["keep_row_after_minhash_filtering"] for r in rows]}


# ---- lm-evaluation-harness: the `hf` model on the local folder ----------------------------------
def lmeval_load(model: str, batch: int, tasks: str, threads: int) -> dict:
    """HFLM on the local folder, float32, CPU. Its `_encode_pair` follows STATE["encode"]:

    - "stock": lm-eval's own (the context's trailing whitespace moved into the continuation, context +
      continuation encoded together and split at len(encode(context)));
    - "ids": the (context, continuation) token ids the driver sends for each pair (`lmeval_encode`):
      the tokens our scorer scores, so both sides compute log P of the same tokens.
    """
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(threads)
    STATE.update(encode="stock", pairs={}, seen={})

    class PeersHFLM(HFLM):
        def _encode_pair(self, context: str, continuation: str):
            if STATE["encode"] == "ids":
                ctx, cont = STATE["pairs"][context + "\0" + continuation]
            else:
                ctx, cont = super()._encode_pair(context, continuation)
            STATE["seen"][context + "\0" + continuation] = (ctx, cont)
            return ctx, cont

    def build():
        return PeersHFLM(pretrained=model, device="cpu", batch_size=batch, dtype="float32")

    seconds, peak, lm = timed(build)
    engine: dict[str, float] = {}
    for name in ("loglikelihood", "generate_until"):  # time the engine apart from lm-eval's task setup
        method = getattr(lm, name)

        def wrapped(requests, *args, _method=method, _name=name, **kwargs):
            start = time.perf_counter()
            out = _method(requests, *args, **kwargs)
            engine[_name] = engine.get(_name, 0.0) + time.perf_counter() - start
            return out

        setattr(lm, name, wrapped)
    # Only our task folder: the default TaskManager indexes every built-in task first.
    STATE.update(lm=lm, engine=engine, tm=TaskManager(include_path=tasks, include_defaults=False))
    return {"load_s": seconds, "peak_rss_mb": peak, "lm_eval": version("lm_eval")}


def lmeval_encode(pairs: list[list]) -> dict:
    """Register the token ids to use for (context, continuation) pairs when encode == "ids"."""
    STATE["pairs"] = {c + "\0" + k: (ctx, cont) for c, k, ctx, cont in pairs}
    return {"pairs": len(pairs)}


def lmeval_dtype(name: str) -> dict:
    """The loaded HFLM's weights cast to `name` (e.g. "float64", for the agreement check without float32
    rounding: its log-softmax then runs in that dtype too)."""
    import torch

    STATE["lm"].model.to(getattr(torch, name))
    return {"dtype": name}


def lmeval_run(task: str, encode: str = "stock", limit: int | None = None) -> dict:
    """`lm_eval.simple_evaluate` of one task on the loaded model (its first `limit` docs, or all): wall and
    engine seconds, per-doc outputs."""
    import lm_eval

    STATE.update(encode=encode, seen={})
    STATE["engine"].clear()

    def run():
        return lm_eval.simple_evaluate(model=STATE["lm"], tasks=[task], task_manager=STATE["tm"], device="cpu",
                                       log_samples=True, bootstrap_iters=0, random_seed=0, limit=limit)

    seconds, peak, out = timed(run)
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    docs = []
    for s in samples:
        contexts = [a[0] for a in s["arguments"]]
        if isinstance(s["resps"][0][0], (list, tuple)):  # loglikelihood: (logprob, is_greedy) per choice
            conts = [a[1] for a in s["arguments"]]
            docs.append({"id": s["doc"]["id"], "contexts": contexts, "continuations": conts,
                         "loglik": [float(r[0][0]) for r in s["resps"]],
                         "cont_ids": [STATE["seen"][c + "\0" + k][1] for c, k in zip(contexts, conts, strict=True)]})
        else:
            docs.append({"id": s["doc"]["id"], "contexts": contexts, "text": s["resps"][0][0]})
    metrics = {k: v for k, v in out["results"][task].items() if isinstance(v, (int, float))}
    return {"seconds": seconds, "engine_s": sum(STATE["engine"].values()), "peak_rss_mb": peak, "docs": docs,
            "metrics": metrics}


def imports() -> dict:
    """The libraries, imported before anything is timed."""
    seconds, _, _ = timed(lambda: (__import__("torch"), __import__("transformers"),
                                   __import__("distilabel.models.llms"), __import__("lm_eval.models.huggingface")))
    return {"seconds": seconds}


OPS = {f.__name__: f for f in (imports, distilabel_load, distilabel_inputs, distilabel_stock, distilabel_pipeline,
                               distilabel_generate,
                               distilabel_dedup, lmeval_load, lmeval_encode, lmeval_dtype, lmeval_run)}


def main() -> None:
    serve(OPS)


if __name__ == "__main__":
    main()
