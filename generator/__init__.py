"""Seed-conditioned generation of labelled samples: `python generate.py --task fin_sentiment ...`.

Backends live in `generator.backends` and are imported only when named, so `import generator`
never pulls in torch, vLLM or the OpenAI SDK.
"""
