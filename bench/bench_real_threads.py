"""How torch's OpenMP threads wait, on real weights: sleeping (ours) against spinning (torch's default).

    python -m bench real_threads              # SLOW (a few minutes): `python -m bench --all` runs it too

The wait policy is read once, when torch loads, so each side is a child process: the same workload with
`OMP_WAIT_POLICY` unset (libgomp's default: a thread spins before it sleeps) and with `PASSIVE` (what
`backends` sets unless the user did). Each child imports torch before anything of ours, times each
workload at every core (torch's default thread count) and at 1 thread, best of `ROUNDS`, and prints JSON.
The workloads are smollm2-135m's: a LoRA training step (forward + backward, batch 8), scoring 16 items,
decoding 8 rows x 16 tokens and 1 row x 24 tokens. Which policy wins depends on what else runs on the
cores: with another process keeping a core busy, a spinning thread holds the core its partner needs;
on calmer cores spinning answers faster (both measured: docs/benchmarks.md#real-weights).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from backends.models import REPO_ROOT, SMOLLM2
from bench import BenchRow, ratio

SLOW = True
ROUNDS = 2

CHILD = r"""
import torch  # before anything of ours: the wait policy is the environment's
import json, os, sys, tempfile, time
from backends.decode import decode
from backends.transformers_backend import TransformersBackend
from bench.bench_evaluator import _records
from core.tasks import load_task
from evaluator.prompts import score_choices, tuned_prompts
from trainer.config import TrainConfig
from trainer.sft import build_trainer

model, rounds = sys.argv[1], int(sys.argv[2])
task = load_task("fin_sentiment")
records = _records(task)
cfg = TrainConfig(task=task.name, model=model, out=tempfile.mkdtemp(), device="cpu", max_steps=1,
                  val_fraction=0.0).resolved()
trainer = build_trainer(cfg, task, records[:8], [])
batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
trainer.model.train()
backend = TransformersBackend(model, device="cpu", batch_size=16)
prompts = tuned_prompts(task, records)[:16]
choices = score_choices(task).choices
ids = backend.tokenizer([backend.render(p) for p in prompts[:8]], add_special_tokens=False)["input_ids"]
pad = backend.tokenizer.pad_token_id

def train_step():
    trainer.model(**batch, fused_lm_head=True).loss.backward()
    trainer.model.zero_grad()

work = {
    "train_step": train_step,
    "score_16": lambda: backend.score(prompts, choices),
    "decode_8x16": lambda: decode(backend.model, ids, batch_size=8, pad_id=pad, max_new_tokens=16, stop_ids=()),
    "decode_1x24": lambda: decode(backend.model, ids[:1], batch_size=1, pad_id=pad, max_new_tokens=24, stop_ids=()),
}
out = {}
for threads in sorted({os.cpu_count() or 1, 1}, reverse=True):
    torch.set_num_threads(threads)
    for name, fn in work.items():
        fn()
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        out[f"{name}@{threads}"] = best
out["load"] = os.getloadavg()[0]
print(json.dumps(out))
"""


def _child(policy: str | None, model: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS"}}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env.update(PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, "-c", CHILD, model, str(ROUNDS)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> list[BenchRow]:
    cores = os.cpu_count() or 1
    spin = _child(None, SMOLLM2)
    sleep = _child("PASSIVE", SMOLLM2)
    load = f"load average {spin['load']:.1f} / {sleep['load']:.1f} at the end of each child, {cores} cores"
    rows = []
    for name in ("train_step", "score_16", "decode_8x16", "decode_1x24"):
        many, one = f"{name}@{cores}", f"{name}@1"
        rows.append(BenchRow(f"real_threads.sleep_vs_spin.{name}.{SMOLLM2}", sleep[many], spin[many],
                             ratio(sleep[many], spin[many], higher_is_better=False), None, "s",
                             f"{cores} threads (torch's default), OMP_WAIT_POLICY=PASSIVE against unset (libgomp's "
                             f"default spin); each best of {ROUNDS} in its own process; same thread count, same "
                             f"results; {load}"))
        rows.append(BenchRow(f"real_threads.{cores}_vs_1_thread_sleeping.{name}.{SMOLLM2}", sleep[many], sleep[one],
                             ratio(sleep[many], sleep[one], higher_is_better=False), None, "s",
                             f"PASSIVE, {cores} threads against 1 in the same process; spinning, {cores} threads took "
                             f"{spin[many]:.2f} s against {spin[one]:.2f} s at 1; {load}"))
    return rows
