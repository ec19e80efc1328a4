"""Our side of `python -m bench peers`, as the same kind of server as the peers' (bench/peers_side/peer.py).

    python -m bench.peers_ours      # started by bench/bench_peers.py, never by hand

One JSON request per line on stdin, one JSON reply per line on stdout; library output goes to stderr.
Our side runs in its own process, like the peers, so that each side's peak RSS is its own process's
(model, libraries and the work) and not the benchmark driver's. Each reply times only our call.
"""

from __future__ import annotations

from typing import Any

from bench.peers_side.protocol import serve, timed

STATE: dict[str, Any] = {}


def load(model: str, batch: int, threads: int, task: str = "fin_sentiment", schema: bool = False) -> dict:
    """TransformersBackend on the local folder (CPU, float32); with `schema`, the generation schema's
    constraint is compiled here too (as distilabel's `load()` compiles it)."""
    import torch

    from backends.transformers_backend import TransformersBackend
    from core.tasks import load_task

    torch.set_num_threads(threads)
    STATE["task"] = load_task(task)

    def build():
        backend = TransformersBackend(model, device="cpu", batch_size=batch)
        if schema:
            backend.logits_processor(STATE["task"].generation_schema())
        return backend

    seconds, peak, STATE["backend"] = timed(build)
    return {"load_s": seconds, "peak_rss_mb": peak}


def dtype(name: str) -> dict:
    """The loaded model's weights cast to `name` (e.g. "float64", for the agreement check without float32
    rounding)."""
    import torch

    STATE["backend"].model.to(getattr(torch, name))
    return {"dtype": name}


def inputs(messages: list[list[dict]]) -> dict:
    """The exact text and token ids our backend feeds the model for each chat prompt."""
    backend = STATE["backend"]
    texts = [backend.render(m) for m in messages]
    return {"texts": texts, "ids": backend.tokenizer(texts, add_special_tokens=False)["input_ids"]}


def generate(messages: list[list[dict]], seeds: list[int], sampling: dict, greedy: bool) -> dict:
    """`backend.generate` with the task's generation schema: prompts in, parsed rows out."""
    from backends import Sampling

    spec = Sampling(temperature=0.0 if greedy else sampling["temperature"],
                    top_p=1.0 if greedy else sampling["top_p"], max_new_tokens=sampling["max_new_tokens"])
    schema = STATE["task"].generation_schema()
    seconds, peak, out = timed(lambda: STATE["backend"].generate(messages, schema, spec, seeds=seeds))
    return {"seconds": seconds, "peak_rss_mb": peak, "texts": [c.text for c in out],
            "ok": [c.ok for c in out], "tokens": [c.completion_tokens for c in out]}


def dedup(texts: list[str], threshold: float, n: int) -> dict:
    """The near_duplicates validator on these rows, with distilabel's shingling (character n-grams)."""
    from core.records import Record
    from validators.base import build

    task = STATE["task"]
    records = [Record.new(task=task.name, lang="en", text=t, labels={"label": task.label_names[0]}) for t in texts]
    validator = build("near_duplicates", task, {"threshold": threshold,
                                                "shingling": {"*": {"unit": "char", "n": n, "spaces": True}}})
    first_s, _, _ = timed(lambda: validator.check(records))  # the first check in this process
    seconds, _, verdicts = timed(lambda: validator.check(records))
    return {"first_s": first_s, "seconds": seconds, "keep": [v.passed for v in verdicts]}


def predict(messages: list[list[dict]], mode: str, batch: int) -> dict:
    """`evaluator.inference.predict` (what `python -m evaluator --mode MODE` runs per batch), timed."""
    from evaluator.inference import predict as run

    task = STATE["task"]
    seconds, peak, preds = timed(lambda: run(STATE["backend"], task, messages, mode=mode, batch_size=batch))
    return {"seconds": seconds, "peak_rss_mb": peak, "labels": [p.label for p in preds],
            "raw": [p.raw for p in preds],
            "scores": [[p.scores[c] for c in task.label_names] if p.scores else None for p in preds]}


def imports() -> dict:
    """The libraries, imported before anything is timed."""
    seconds, _, _ = timed(lambda: (__import__("backends.transformers_backend"), __import__("evaluator.inference"),
                                   __import__("validators.near_duplicates")))
    return {"seconds": seconds}


OPS = {f.__name__: f for f in (imports, load, dtype, inputs, generate, dedup, predict)}


def main() -> None:
    serve(OPS)


if __name__ == "__main__":
    main()
