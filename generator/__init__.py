"""Seed-conditioned generation of labelled samples: `python generate.py --task fin_sentiment ...`
(or `python -m generator ...`).

`prompts` plans each sample (target label, seed examples, template, attributes, sampling) as a pure
function of the run seed and its index; `runner` drives a backend over the missing indices and
appends to `samples.jsonl`, so runs resume after a crash; `backends` holds the transformers
(Outlines), vLLM and OpenAI-compatible backends, imported only when named, so `import generator`
never pulls in torch, vLLM or the OpenAI SDK.
"""
