"""python -m validators --task fin_sentiment --in samples.jsonl --out DIR [--reference train.jsonl --reference eval.jsonl]

Checks synthetic (or any) records before a person sees them, and says why each rejection happened.
One module per validator, registered by the names a task YAML lists under `validators:`:

- `schema` (schema.py): language, label in the set, text and output length bounds;
- `quality` (quality.py): repeated n-grams, label-word leaks, prompt echoes, assistant boilerplate;
- `near_duplicates` (near_duplicates.py, minhash.py): MinHash LSH within the batch, against seeds
  and against the eval set (contamination), batched hashing, optional Redis index;
- `language` (language.py): langdetect with a fixed seed, plus Vietnamese diacritics for short text;
- `self_consistency` (self_consistency.py): the model relabels each sample k times;
- `neighbour_agreement` (neighbours.py, optional): labels of the nearest real seeds (sentence-transformers).

From Python (what `generate.py` calls):

    from validators import run_chain
    accepted, rejected, report = run_chain(task, records, references=refs, backend=backend)
"""

from validators.chain import run_chain

__all__ = ["run_chain"]
