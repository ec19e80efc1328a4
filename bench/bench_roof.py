"""This machine's roof: what fp32 matrix multiplies and memory copies reach on its cores.

    python -m bench roof

Times float32 `torch.mm` at the shapes smollm2-135m runs (its projections at a training batch's and a
decoding step's token counts, its LM head 576 x 49,152 over a training batch and over a scoring batch's
last positions) and a large square one, at 1 thread and at every core, best of `REPEATS`; the memory
bandwidth from a large read (what a decoding step does to the weights) and a large copy. The roof the
real-weights shares divide by (bench/bench_real.py) is the best fp32 rate measured at the same thread
count. bf16 rows say what autocast could reach on an AVX-512-BF16 CPU (not used by our defaults).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from bench import BenchRow, ratio

REPEATS = 5
# (name, tokens, in, out) of smollm2-135m's matrix multiplies: hidden 576, MLP 1536, 3 KV heads of 64.
TRAIN_TOKENS, SCORE_ROWS, DECODE_ROWS = 768, 16, 8  # 8 examples x 96 tokens; one scoring batch; 8 decode slots
SHAPES = [
    ("square_2048", 2048, 2048, 2048),
    ("qo_768x576x576", TRAIN_TOKENS, 576, 576),
    ("kv_768x576x192", TRAIN_TOKENS, 576, 192),
    ("gateup_768x576x1536", TRAIN_TOKENS, 576, 1536),
    ("down_768x1536x576", TRAIN_TOKENS, 1536, 576),
    ("head_768x576x49152", TRAIN_TOKENS, 576, 49152),
    ("head_16x576x49152", SCORE_ROWS, 576, 49152),
    ("gateup_8x576x1536", DECODE_ROWS, 576, 1536),
]
BANDWIDTH_BYTES = 512 * 2**20  # well past the 32 MiB L3


@dataclass
class Roof:
    """What one thread count reaches: FLOP/s per shape, the best of them, and bytes/s read and copied."""

    threads: int
    flops: dict[str, float] = field(default_factory=dict)
    bf16: dict[str, float] = field(default_factory=dict)
    read_bytes_per_s: float = 0.0
    copy_bytes_per_s: float = 0.0

    @property
    def matmul(self) -> float:
        """The roof: the best fp32 rate at this thread count (square or the model's own shapes)."""
        return max(self.flops.values())


def _best(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up: first-call allocation and MKL's kernel choice
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(threads: int, shapes: list[tuple[str, int, int, int]] = SHAPES, bf16: bool = True) -> Roof:
    """The roof at `threads` intra-op threads (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    roof = Roof(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        for name, m, k, n in shapes:
            a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
            out = torch.empty(m, n)
            roof.flops[name] = 2 * m * k * n / _best(lambda a=a, b=b, out=out: torch.mm(a, b, out=out))
            if bf16 and name in ("square_2048", "head_768x576x49152"):
                a16, b16 = a.bfloat16(), b.bfloat16()
                roof.bf16[name] = 2 * m * k * n / _best(lambda a16=a16, b16=b16: torch.mm(a16, b16))
        src = torch.ones(BANDWIDTH_BYTES // 4)
        dst = torch.empty_like(src)
        roof.read_bytes_per_s = BANDWIDTH_BYTES / _best(lambda: src.sum())
        roof.copy_bytes_per_s = 2 * BANDWIDTH_BYTES / _best(lambda: dst.copy_(src))  # read + write
    finally:
        torch.set_num_threads(before)
    return roof


def rows(roofs: list[Roof]) -> list[BenchRow]:
    """Bench rows: each shape's fp32 rate against the large square's, per thread count; the thread scaling;
    bandwidths; bf16 against fp32."""
    load = os.getloadavg()[0]
    out = []
    for roof in roofs:
        square = roof.flops["square_2048"]
        where = f"{roof.threads} thread{'s' if roof.threads > 1 else ''}; load average {load:.1f} on {os.cpu_count()} cores"
        for name, value in roof.flops.items():
            out.append(BenchRow(f"roof.fp32.{name}.t{roof.threads}", value / 1e9, square / 1e9,
                                ratio(value, square), None, "GFLOP/s",
                                f"float32 torch.mm, best of {REPEATS}; baseline: the 2048^3 square; {where}"))
        out.append(BenchRow(f"roof.fp32.best.t{roof.threads}", roof.matmul / 1e9, square / 1e9,
                            ratio(roof.matmul, square), None, "GFLOP/s",
                            f"the roof the real-weights shares divide by: best fp32 rate above; {where}"))
        out.append(BenchRow(f"roof.read_gb_per_s.t{roof.threads}", roof.read_bytes_per_s / 1e9,
                            roof.copy_bytes_per_s / 1e9, ratio(roof.read_bytes_per_s, roof.copy_bytes_per_s), None,
                            "GB/s", f"sum over {BANDWIDTH_BYTES >> 20} MiB float32 (bytes read / s); baseline: a copy "
                            f"of it (bytes read + written / s); the batch-1 decoding bound is weight bytes / read "
                            f"rate; {where}"))
        for name, value in roof.bf16.items():
            out.append(BenchRow(f"roof.bf16_vs_fp32.{name}.t{roof.threads}", value / 1e9,
                                roof.flops[name] / 1e9, ratio(value, roof.flops[name]), None, "GFLOP/s",
                                f"bfloat16 torch.mm (AVX-512 BF16 here) against float32, same shape; {where}"))
    if len(roofs) > 1:
        one, many = roofs[0], roofs[-1]
        out.append(BenchRow(f"roof.fp32.square_2048.t{many.threads}_vs_t1", many.flops["square_2048"] / 1e9,
                            one.flops["square_2048"] / 1e9, ratio(many.flops["square_2048"], one.flops["square_2048"]),
                            None, "GFLOP/s", f"{many.threads} threads against 1 on the 2048^3 square; the cores are "
                            f"shared (load average {load:.1f}), so this is what another busy process leaves"))
    return out


def run() -> list[BenchRow]:
    cores = os.cpu_count() or 1
    return rows([measure(t) for t in sorted({1, cores})])
