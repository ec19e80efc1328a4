"""The `python -m trainer` command: `format` (show what is trained on) and training (the default)."""

from __future__ import annotations

import argparse
import json
import sys

from core.models import TINY
from trainer.config import ALL_LINEAR, TrainConfig
from trainer.inputs import ColumnMap

FORMAT_USAGE = "python -m trainer format --task TASK --model MODEL --in FILE [--show N]"


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("inputs that are not Record JSONL (CSV, TSV, Parquet, JSONL rows, hub:NAME[:SPLIT])")
    g.add_argument("--text-col", help="column with the input text (turns on the column mapping)")
    g.add_argument("--label-col", default="label", help="column with the label (default: label)")
    g.add_argument("--lang", default="en", help="language code of every row (default: en)")
    g.add_argument("--lang-col", help="column with each row's language code (instead of --lang)")
    g.add_argument("--output-col", action="append", default=[], metavar="FIELD=COLUMN",
                   help="a task output field from a column, e.g. reply=ideal_reply (repeatable)")
    g.add_argument("--label-source", help="dataset name for the task's numeric label codes, e.g. uit_vsfc")


def _columns(args: argparse.Namespace) -> ColumnMap | None:
    if not args.text_col:
        return None
    outputs = {}
    for item in args.output_col:
        name, sep, col = item.partition("=")
        if not sep:
            parser_error(f"--output-col expects FIELD=COLUMN, got '{item}'")
        outputs[name] = col
    return ColumnMap(text=args.text_col, label=args.label_col, lang=args.lang, lang_col=args.lang_col,
                     outputs=outputs, source=args.label_source)


def parser_error(message: str) -> None:
    from core.errors import fail

    fail(message)


def format_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer format", description=(
        "Show training examples as task messages and as the model's chat template, special tokens "
        "included, with the part the loss is computed on."))
    p.add_argument("--task", required=True, help="task name (tasks/<name>.yaml) or a path to a task YAML")
    p.add_argument("--model", default=TINY, help="model whose chat template to use (default: tiny)")
    p.add_argument("--in", dest="inputs", nargs="+", required=True, metavar="FILE", help="input file(s)")
    p.add_argument("--show", type=int, default=3, help="how many examples to print (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the instruction-paraphrase choice")
    _add_input_args(p)
    return p


def train_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m trainer", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="LoRA supervised fine-tuning (loss on assistant tokens only). Writes the adapter in PEFT "
                    "format, training_summary.json and loss_curve.png to --out. 'default: None' means a "
                    "model-dependent default (tiny vs 1B, see trainer/config.py). "
                    f"See also: {FORMAT_USAGE}")
    p.add_argument("--task", default=d.task, help="task name or path to a task YAML")
    p.add_argument("--model", default=d.model, help="'tiny' (offline) or a Hub id / local folder")
    p.add_argument("--train", nargs="+", required=True, metavar="FILE", help="training file(s), concatenated")
    p.add_argument("--out", default=d.out, help="output folder (adapter, summary, loss curve)")
    p.add_argument("--method", choices=["lora", "qlora", "full"], default=d.method,
                   help="qlora: 4-bit base model, needs CUDA and bitsandbytes; full: every weight trained")
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, help="peak learning rate")
    g.add_argument("--epochs", type=float, help="number of epochs")
    g.add_argument("--max-steps", type=int, default=d.max_steps, help="stop after this many steps (-1: epochs)")
    g.add_argument("--batch-size", type=int, help="examples per device step")
    g.add_argument("--grad-accum", type=int, help="gradient accumulation steps")
    g.add_argument("--max-length", type=int, help="max tokens per example (or per packed row)")
    g.add_argument("--packing", action="store_true", help="pack examples into rows (padding-free, BFD)")
    g.add_argument("--no-group-by-length", dest="group_by_length", action="store_false",
                   help="random batches instead of batches of similar lengths (less padding)")
    g.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="linear warmup share of steps")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction, help="held-out share for eval loss")
    g.add_argument("--seed", type=int, default=d.seed, help="seed for data order, LoRA init, dropout, val split")
    g.add_argument("--time-budget", dest="time_budget_s", type=float,
                   help="stop cleanly before this many seconds (recorded as stopped_early)")
    g.add_argument("--logging-steps", type=int, default=d.logging_steps, help="log the train loss every N steps")
    g.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    lg = p.add_argument_group("LoRA")
    lg.add_argument("--lora-r", type=int, help="LoRA rank")
    lg.add_argument("--lora-alpha", type=int, help="LoRA alpha (scale = alpha / r)")
    lg.add_argument("--lora-dropout", type=float, default=d.lora_dropout, help="LoRA dropout")
    lg.add_argument("--target-modules", nargs="+", default=ALL_LINEAR, help="modules that get LoRA adapters")
    lg.add_argument("--modules-to-save", nargs="*",
                    help="modules trained in full and saved with the adapter (tiny: embed_tokens lm_head)")
    og = p.add_argument_group("outputs")
    og.add_argument("--merge", action="store_true", help="also write the merged model to OUT/merged")
    og.add_argument("--push-to-hub", metavar="REPO", help="push the adapter to this Hub repo (token: HF_TOKEN)")
    _add_input_args(p)
    return p


def run_format(argv: list[str]) -> int:
    from core.models import load_tokenizer
    from core.tasks import load_task
    from trainer.formatting import show
    from trainer.inputs import load_inputs

    args = format_parser().parse_args(argv)
    task = load_task(args.task)
    records = load_inputs(args.inputs, task, _columns(args))
    print(show(records, task, load_tokenizer(args.model), n=args.show, seed=args.seed))
    return 0


def run_train(argv: list[str]) -> int:
    from core.tasks import load_task
    from trainer.inputs import load_inputs
    from trainer.sft import SUMMARY_FILE, train

    args = train_parser().parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.field_names()}
    config = TrainConfig(**fields)
    columns = _columns(args)
    records = load_inputs(args.train, load_task(args.task), columns) if columns else None
    summary = train(config, records=records)
    keys = ["steps", "train_loss", "val_loss", "wall_clock_s", "tokens_per_s", "peak_memory_mb",
            "trainable_params", "total_params", "stopped_early"]
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    print(f"adapter, {SUMMARY_FILE} and loss_curve.png in {summary['adapter_dir']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "format":
        return run_format(argv[1:])
    return run_train(argv)
