"""The real-weights benches' plumbing, without real weights: which ones `make bench` runs, the roof's rows,
and the demo's stage rows read from a finished demo's summary."""

from __future__ import annotations

import json

from bench.__main__ import discover
from bench.bench_demo import SUMMARY_ENV
from bench.bench_demo import run as demo_run
from bench.bench_roof import Roof, rows


def test_make_bench_runs_the_roof_and_leaves_the_real_weights_rows_to_slow_runs():
    fast = discover([])
    assert "bench_roof" in fast
    assert not {"bench_real", "bench_real_threads", "bench_demo", "bench_peers"} & set(fast)
    assert {"bench_real", "bench_real_threads", "bench_demo"} <= set(discover([], everything=True))


def test_roof_rows_name_each_shape_per_thread_count_and_the_best():
    one = Roof(1, flops={"square_2048": 90e9, "head_16x576x49152": 30e9}, bf16={"square_2048": 180e9},
               read_bytes_per_s=20e9, copy_bytes_per_s=25e9)
    two = Roof(2, flops={"square_2048": 100e9, "head_16x576x49152": 20e9}, read_bytes_per_s=21e9,
               copy_bytes_per_s=24e9)
    out = {r.name: r for r in rows([one, two])}
    assert out["roof.fp32.head_16x576x49152.t1"].ratio == 30 / 90
    assert out["roof.fp32.best.t2"].ours == 100 and one.matmul == 90e9
    assert out["roof.bf16_vs_fp32.square_2048.t1"].ratio == 2
    assert out["roof.read_gb_per_s.t1"].ours == 20
    assert out["roof.fp32.square_2048.t2_vs_t1"].ratio == 100 / 90


def test_demo_rows_from_a_finished_demo_summary(tmp_path, monkeypatch):
    summary = {
        "model": "smollm2-135m", "seconds_this_run": 0.0,  # every stage reused: the stages' sum stands in
        "data": {"train": 60, "eval": 16}, "synthetic": {"generated": 8},
        "train": {"tokens_per_s": 50.0, "wall_clock_s": 20.0, "records": 68, "steps": 9},
        "eval": {"n": 16}, "ablation": None,
        "stages": {"data": {"seconds": 4.0, "reused": True}, "generate": {"seconds": 40.0, "reused": True},
                   "train": {"seconds": 36.0, "reused": True}, "evaluate": {"seconds": 20.0, "reused": True}},
    }
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    monkeypatch.setenv(SUMMARY_ENV, str(path))
    out = {r.name: r for r in demo_run()}
    assert out["demo.stage_seconds.generate.smollm2-135m"].ours == 40
    assert out["demo.stage_seconds.generate.smollm2-135m"].baseline == 100  # the stages' sum
    assert "8 generated samples" in out["demo.stage_seconds.generate.smollm2-135m"].note
    assert "1000 training tokens" in out["demo.stage_seconds.train.smollm2-135m"].note
    assert "76 rows written" in out["demo.stage_seconds.data.smollm2-135m"].note
    assert out["demo.whole_run_vs_20_min_budget.smollm2-135m"].ratio == 1200 / 100
