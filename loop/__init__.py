"""The roof: the stage chain that `generate.py` and `demo.py` run, built on every stage below it.

`loop.generate` chains generate → validate → enqueue (`python generate.py`, `python -m loop`);
`loop.demo` chains data → generate → review → export → train → evaluate → ablation (`python demo.py`).
No stage package imports this one.
"""
