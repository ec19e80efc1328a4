"""Choice scoring on the Llama-3-shaped tiny model (128,256-token vocabulary).

    python -m bench scoring

Choice scoring vs free generation on `tiny-llama3` (base and tuned), and our `TransformersBackend.score`
vs the full-logits method it replaced (speed and peak memory). How memory is measured, and the bound
we state: docs/benchmarks.md#design-benchbench_scoringpy
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from backends import chat
from backends.models import REPO_ROOT, TINY_LLAMA3, default_device, load_model
from backends.transformers_backend import TransformersBackend
from bench import BenchRow, ratio
from bench.bench_evaluator import BATCH, TUNED_TARGET, _compare, _records, tuned_model
from core.io import read_jsonl
from core.tasks import load_task
from evaluator.prompts import tuned_prompts

PROMPT_TOKENS = 450
N_PROMPTS = 2
OLD_BATCH = 1  # the old method at 16 prompts × 15 choices × 450 tokens would need ~55 GB of logits


def run() -> list[BenchRow]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        device = default_device()
        model, tokenizer = load_model(TINY_LLAMA3, device=device)
        backend = TransformersBackend(TINY_LLAMA3, loaded=(model, tokenizer), batch_size=BATCH)
        task = load_task("fin_sentiment")
        records = _records(task)
        prompts = tuned_prompts(task, records)[:48]
        rows = [_compare(f"{TINY_LLAMA3}.base", backend, task, prompts)]
        rows.extend(_kv_vs_full_logits(backend))
        # 20 steps of 4 (about 3.5 min on the shared 2 cores: every step computes 128k-vocabulary logits)
        # are enough here: every answer is then "<label><|eot_id|>".
        tuned = tuned_model(TINY_LLAMA3, model, task, records, device, steps=20, batch=4)
        backend = TransformersBackend(TINY_LLAMA3, loaded=(tuned, tokenizer), batch_size=BATCH)
        rows.append(_compare(f"{TINY_LLAMA3}.tuned", backend, task, prompts, target=TUNED_TARGET))
    finally:
        torch.set_num_threads(threads)
    return rows


def _long_tickets(task, tokenizer, n: int) -> list[list[dict[str, str]]]:
    """`n` support tickets of ~PROMPT_TOKENS tokens each once rendered (sample tickets joined)."""
    texts = [row["ticket"] for row in read_jsonl(REPO_ROOT / "data" / "samples" / "northstar" / "train.jsonl")]
    prompts = []
    for i in range(n):
        parts, j = [], i
        while True:
            parts.append(texts[j % len(texts)])
            j += n
            messages = task.classify_messages(" ".join(parts), "en")
            rendered = chat.render(tokenizer, messages, add_generation_prompt=True)
            if len(tokenizer(rendered, add_special_tokens=False)["input_ids"]) >= PROMPT_TOKENS:
                break
        prompts.append(messages)
    return prompts


def full_logit_scores(backend: TransformersBackend, prompts, choices: list[str], batch: int) -> list[list[float]]:
    """The replaced method (baseline only): prompt + choice for every pair, full float32 log-softmax, on
    the same tokens as `TransformersBackend.score` (`chat.choice_tokens`)."""
    import torch

    tok = backend.tokenizer
    scores: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch):
            chunk = prompts[start : start + batch]
            rows = [(ids[:-n], ids[-n:]) for p in chunk
                    for ids, n in chat.choice_tokens(tok, backend.answer_prefix(p), choices)]
            width = max(len(p) + len(c) for p, c in rows)
            input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            for i, (p, c) in enumerate(rows):
                input_ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                attention[i, : len(p) + len(c)] = 1
            logits = backend.model(input_ids=input_ids.to(backend.device),
                                   attention_mask=attention.to(backend.device)).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            totals = [float(logprobs[i, torch.arange(len(p) - 1, len(p) + len(c) - 1), torch.tensor(c)].sum())
                      for i, (p, c) in enumerate(rows)]
            del logits, logprobs
            scores.extend(totals[j * len(choices) : (j + 1) * len(choices)] for j in range(len(chunk)))
    return scores


def _measure(fn) -> tuple[float, float, object]:
    """(seconds, peak memory rise in MB, result) of `fn()`."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _return_freed_memory()
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kb("VmRSS") * 1024
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else _status_kb("VmHWM") * 1024
    return seconds, (peak - before) / 2**20, result


def _return_freed_memory() -> None:
    """Make the resident set follow live tensors: glibc otherwise keeps freed blocks (its mmap threshold
    grows after each free), so a method run after another would look as if it needed nothing."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: fixed, so blocks >= 64 KiB are unmapped when freed
    libc.mallopt(-1, 64 * 1024)  # M_TRIM_THRESHOLD
    libc.malloc_trim(0)


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _kv_vs_full_logits(backend: TransformersBackend) -> list[BenchRow]:
    import numpy as np

    task = load_task("support_intent")
    choices = list(task.label_names)
    tok = backend.tokenizer
    prompts = _long_tickets(load_task("support_intent"), tok, N_PROMPTS)
    lengths = [len(tok(backend.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    n_max = max(len(tok(c, add_special_tokens=False)["input_ids"]) for c in choices)
    backend.batch_size = OLD_BATCH
    backend.score(prompts[:1], choices[:2])  # warm-up
    new_s, new_mb, new = _measure(lambda: backend.score(prompts, choices))
    old_s, old_mb, old = _measure(lambda: full_logit_scores(backend, prompts, choices, OLD_BATCH))
    diff = float(np.abs(np.array(new) - np.array(old)).max())

    cfg = backend.model.config
    vocab, rows, p_max = cfg.vocab_size, OLD_BATCH, max(lengths)
    kv = rows * p_max * cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim
    activations = rows * (2 * cfg.num_attention_heads * p_max**2 + 3 * p_max * cfg.intermediate_size)
    bound_mb = 4 * (kv + activations + 2 * rows * vocab + 2 * rows * (n_max - 1) * vocab) / 2**20
    old_need_mb = 4 * 2 * rows * len(choices) * (p_max + n_max) * vocab / 2**20
    where = "GPU" if str(backend.device).startswith("cuda") else "CPU, 1 thread"
    common = (f"{len(prompts)} prompts of {min(lengths)}-{max(lengths)} tokens, {len(choices)} choices of "
              f"2-{n_max} tokens, vocabulary {vocab}, batch {rows}; max |difference| {diff:.1e} nats; {where}")
    return [
        BenchRow(f"scoring.kv_prefix_vs_full_logits.speed.{TINY_LLAMA3}", len(prompts) / new_s,
                 len(prompts) / old_s, ratio(len(prompts) / new_s, len(prompts) / old_s), 5.0, "prompts/s", common),
        BenchRow(f"scoring.kv_prefix_vs_full_logits.peak_memory.{TINY_LLAMA3}", new_mb, old_mb,
                 ratio(new_mb, old_mb, higher_is_better=False), 10.0, "MB",
                 f"{common}; stated bound for ours {bound_mb:.0f} MB "
                 f"(prompt-pass activations + KV cache + 2·B·V + 2·B·(n_max−1)·V float32), measured {new_mb:.0f} MB "
                 f"({'within' if new_mb <= bound_mb else 'ABOVE'} it); the old method's estimate "
                 f"2·B·C·(P+n)·V float32 = {old_need_mb:.0f} MB"),
    ]
