"""python -m evaluator --task fin_sentiment --model tiny --adapter runs/fin/adapter --eval runs/fin/data/eval.jsonl --out runs/fin/eval

Base vs tuned on the held-out set, fairly: the same items and instruction for both models, choice
scoring / constrained / free generation with a strict parser, and paired statistics (McNemar's
exact test, paired bootstrap of the accuracy difference) next to the majority-class baseline.
Writes `metrics.json`, `predictions.jsonl` and `report.md` (with PNG figures) into `--out`.

Beside majority, base and tuned, every report has the cheap baseline (MiniLM / char TF-IDF + logistic
regression, `--baseline-train FILE`). `python -m evaluator data-value --task T --real train.jsonl --eval
eval.jsonl --synthetic curated.jsonl --out DIR` asks whether a synthetic set is worth training on
(`evaluator.data_value`).

Python API: `evaluator.run.evaluate(task, eval_records, model, adapter, out_dir, mode=...) -> dict`,
`evaluator.data_value.data_value(task, real, eval_records, synthetic, out_dir) -> dict`.
"""
