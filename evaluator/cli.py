"""Command line of the evaluator: `python -m evaluator --help`, `python -m evaluator data-value --help`."""

from __future__ import annotations

import argparse
import sys

from backends.models import DEFAULT_MODEL
from core.errors import fail
from core.inputs import add_input_args, columns_from_args, is_record_file, load_inputs
from core.tasks import load_task
from evaluator.data_value import NEAR_COPY, data_value
from evaluator.inference import MODES
from evaluator.run import evaluate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluator",
        description="Evaluate a LoRA adapter against its base model on held-out records: accuracy, macro-F1, "
                    "per language and label, confusion matrices, bootstrap CIs, McNemar's exact test.",
        epilog="examples: python -m evaluator --task fin_sentiment --model tiny --adapter runs/fin/adapter "
               "--eval runs/fin/data/eval.jsonl --out runs/fin/eval;  a labelled table: --eval my.csv "
               "--text-col headline --label-col sentiment --lang en;  is a synthetic set worth training on: "
               "python -m evaluator data-value --help",
    )
    parser.add_argument("--task", required=True, help="task name (tasks/<name>.yaml) or path to a task YAML")
    parser.add_argument("--eval", required=True, dest="eval_path",
                        help="held-out records (Record JSONL with labels and lang, e.g. runs/fin/data/eval.jsonl), "
                             "or a CSV / TSV / Parquet / JSONL-rows file or hub:NAME[:SPLIT] with --text-col ...")
    parser.add_argument("--out", required=True, help="output folder for metrics.json, predictions.jsonl, report.md")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="base model: smollm2-135m / gemma3-270m (offline, real), tiny (random), Hub id or folder")
    parser.add_argument("--adapter", help="PEFT adapter folder (from python -m trainer); omit to evaluate the base only")
    parser.add_argument("--no-base", action="store_true", help="with --adapter: skip the base model and paired stats")
    parser.add_argument("--mode", choices=MODES, default="score",
                        help="score: log-prob of each label (default, no parsing); constrained: Outlines label "
                             "enum; free: free text then the strict parser")
    parser.add_argument("--backend", default="transformers", help="model backend: transformers (default), vllm, openai")
    parser.add_argument("--shots", type=int, default=0, help="k-shot examples for the base model (default 0)")
    parser.add_argument("--shots-from", help="train-split Record JSONL to draw the base model's shots from")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per forward/generate call (default 16)")
    parser.add_argument("--max-new-tokens", type=int, help="generation budget in free/constrained modes")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed for shots and bootstrap (default 0)")
    parser.add_argument("--baseline-train", nargs="+", metavar="FILE",
                        help="training records for the cheap baseline (MiniLM / char TF-IDF + logistic regression, "
                             "per language); default: the adapter's training files when its training_summary.json "
                             "names them, else --shots-from; without any, the report says there is no baseline")
    parser.add_argument("--no-baseline", action="store_true", help="skip the cheap baseline")
    add_input_args(parser)
    return parser


def build_data_value_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluator data-value",
        description="Is this synthetic set worth training on? Per language: MAUVE, k-NN precision/recall, Vendi, "
                    "nearest-real and nearest-seed similarity (near-copies), label/length/distinct-n against real; "
                    "a cheap classifier trained on real / synthetic / real + synthetic, tested on the real eval split "
                    "(McNemar, paired bootstrap); AgoraBench's gap recovered. Writes data_value.json, report.md, PNGs.",
        epilog="example: python -m evaluator data-value --task fin_sentiment --real runs/fin/data/train.jsonl "
               "--eval runs/fin/data/eval.jsonl --synthetic runs/fin/curated.jsonl --out runs/fin/data_value",
    )
    parser.add_argument("--task", required=True, help="task name (tasks/<name>.yaml) or path to a task YAML")
    parser.add_argument("--real", required=True, help="real training records (e.g. runs/fin/data/train.jsonl)")
    parser.add_argument("--eval", required=True, dest="eval_path", metavar="EVAL",
                        help="real held-out records (e.g. eval.jsonl)")
    parser.add_argument("--synthetic", required=True,
                        help="synthetic records to judge (curated.jsonl, accepted.jsonl); an empty file is reported")
    parser.add_argument("--out", required=True, help="output folder for data_value.json, report.md and figures")
    parser.add_argument("--seeds", help="seed records, for samples without provenance.seed_texts (default: --real)")
    parser.add_argument("--llm-eval", metavar="DIR",
                        help="evaluator folder of the model tuned on real + synthetic (with its base): LLM gap recovered")
    parser.add_argument("--llm-reference", metavar="DIR", help="evaluator folder of the model tuned on real only")
    parser.add_argument("--k", type=int, default=3, help="k of the k-NN precision/recall (default 3)")
    parser.add_argument("--near-copy", type=float, default=NEAR_COPY,
                        help=f"cosine at or above which a sample is a near-copy (default {NEAR_COPY})")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of subsamples, k-means, bootstrap (default 0)")
    add_input_args(parser)
    return parser


def data_value_main(argv: list[str]) -> int:
    args = build_data_value_parser().parse_args(argv)
    if args.bootstrap < 1:
        fail("--bootstrap must be >= 1")
    result = data_value(
        args.task, args.real, args.eval_path, args.synthetic, args.out, seeds=args.seeds, llm_eval=args.llm_eval,
        llm_reference=args.llm_reference, k=args.k, seed=args.seed, near_copy=args.near_copy,
        n_bootstrap=args.bootstrap, columns=columns_from_args(args),
    )
    print(result["verdict"])
    print(f"wrote {args.out}/data_value.json, report.md ({result['seconds']} s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data-value"]:
        return data_value_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.shots < 0 or args.batch_size < 1 or args.bootstrap < 1:
        fail("--shots must be >= 0, --batch-size and --bootstrap >= 1")

    eval_records = args.eval_path
    columns = columns_from_args(args)
    if columns is not None or not is_record_file(args.eval_path):
        # A table (or plain rows) becomes records through the same reader as the trainer's inputs.

        eval_records = load_inputs([args.eval_path], load_task(args.task), columns)
    baseline_train = args.baseline_train
    if baseline_train and columns is not None:  # tables with the same columns as --eval
        baseline_train = load_inputs(baseline_train, load_task(args.task), columns)
    metrics = evaluate(
        args.task, eval_records, model=args.model, adapter=args.adapter, out_dir=args.out, mode=args.mode,
        backend=args.backend, compare_base=not args.no_base, shots=args.shots, shot_pool=args.shots_from,
        seed=args.seed, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        n_bootstrap=args.bootstrap, device=args.device, baseline=not args.no_baseline,
        baseline_train=baseline_train,
    )
    print(summary(metrics))
    print(f"wrote {args.out}/metrics.json, predictions.jsonl, report.md", file=sys.stderr)
    return 0


def summary(metrics: dict) -> str:
    """A few lines for the terminal; the full story is in report.md."""
    lines = []
    for name in ("base", "tuned"):
        if name in metrics:
            m = metrics[name]
            langs = ", ".join(f"{lang} {v['accuracy']:.3f}" for lang, v in m["by_lang"].items())
            lines.append(f"{name:>6}: accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
                         f"invalid {m['invalid_rate']:.3f}  ({langs})")
    lines.append(f"majority ({metrics['majority_baseline']['label']}): accuracy {metrics['majority_baseline']['accuracy']:.3f}")
    if metrics.get("baseline"):
        b = metrics["baseline"]
        langs = ", ".join(f"{lang} {v['accuracy']:.3f}" for lang, v in b["by_lang"].items())
        lines.append(f"cheap baseline: accuracy {b['accuracy']:.3f}  macro-F1 {b['macro_f1']:.3f}  ({langs})")
        if metrics.get("paired_baseline"):
            pb = metrics["paired_baseline"]
            lines.append(f"{pb['model']} vs cheap baseline: Δ accuracy {pb['accuracy_delta']:+.3f}  "
                         f"McNemar p {pb['mcnemar_p']:.3g}")
    else:
        lines.append(f"cheap baseline: none ({metrics.get('baseline_note', '')})")
    if "paired" in metrics:
        p = metrics["paired"]
        lines.append(f"paired: Δ accuracy {p['accuracy_delta']:+.3f} "
                     f"[{p['accuracy_delta_ci'][0]:+.3f}, {p['accuracy_delta_ci'][1]:+.3f}]  McNemar p {p['mcnemar_p']:.3g}")
    return "\n".join(lines)
