"""python -m evaluator --task fin_sentiment --model tiny --adapter runs/fin/adapter --eval runs/fin/data/eval.jsonl --out runs/fin/eval

Base vs tuned on the held-out set, fairly: the same items and instruction for both models, choice
scoring / constrained / free generation with a strict parser, and paired statistics (McNemar's
exact test, paired bootstrap of the accuracy difference) next to the majority-class baseline.
Writes `metrics.json`, `predictions.jsonl` and `report.md` (with PNG figures) into `--out`.

Python API: `evaluator.run.evaluate(task, eval_records, model, adapter, out_dir, mode=...) -> dict`.
"""
