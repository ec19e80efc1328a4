"""python -m validators --task fin_sentiment --in samples.jsonl --out DIR [--reference train.jsonl --reference eval.jsonl]

Checks synthetic (or any) records before a person sees them, and says why each rejection happened.
One module per validator, registered by the names a task YAML lists under `validators:` (schema,
quality, near_duplicates, language, self_consistency, neighbour_agreement, judge). The LLM judge's
bias check: `python -m validators judge-check` (judge_check.py). Which module does what:
docs/validation.md#design-validators__init__py

From Python (what `generate.py` calls):

    from validators import run_chain
    accepted, rejected, report = run_chain(task, records, references=refs, backend=backend)
"""

from validators.chain import run_chain

__all__ = ["run_chain"]
