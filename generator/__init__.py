"""Seed-conditioned generation of labelled samples (`python generate.py` runs it through `loop.generate`).

`prompts` plans each sample (target label, seed examples, template, attributes, sampling) as a pure
function of the run seed and its index; `runner` drives a backend (`backends`) over the missing
indices and appends to `samples.jsonl`, so runs resume after a crash.
"""
