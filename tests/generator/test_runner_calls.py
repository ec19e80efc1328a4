"""In process, the runner hands the backend several batches of one sampling per call (continuous batching keeps
its slots full), and still gets each batch's own completions back, in order, with each sample's own seed."""

from __future__ import annotations

from types import SimpleNamespace

from backends import Completion, Sampling
from generator.runner import CALL_BATCHES, _in_process


class Recorder:
    def __init__(self):
        self.calls: list[tuple[int, float]] = []

    def generate(self, prompts, schema, sampling, seeds=None):
        self.calls.append((len(prompts), sampling.temperature))
        return [Completion(text=f"{p}|{s}") for p, s in zip(prompts, seeds, strict=True)]


def _batches(sizes_and_temperatures: list[tuple[int, float]]) -> list[list[SimpleNamespace]]:
    out, index = [], 0
    for size, temperature in sizes_and_temperatures:
        out.append([SimpleNamespace(messages=f"p{index + i}", sampling=Sampling(temperature=temperature, seed=index + i))
                    for i in range(size)])
        index += size
    return out


def test_a_call_spans_batches_of_one_sampling_and_each_batch_gets_its_own_rows():
    assert CALL_BATCHES == 4
    batches = _batches([(2, 0.7), (2, 0.7), (1, 0.7), *[(2, 1.0)] * 5, (1, 1.0)])
    backend = Recorder()
    per_batch = list(_in_process(backend, batches, schema=None))
    # 0.7: three batches in one call; 1.0: four batches, then the last two.
    assert backend.calls == [(5, 0.7), (8, 1.0), (3, 1.0)]
    assert [[c.text for c in got] for got in per_batch] == [
        [f"{p.messages}|{p.sampling.seed}" for p in batch] for batch in batches]
