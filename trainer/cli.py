"""The `python -m trainer` command: `format` (show what is trained on) and training (the default)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backends.models import DEFAULT_MODEL, load_tokenizer
from core.errors import UserError
from core.inputs import add_input_args, columns_from_args, load_inputs
from core.tasks import load_task
from trainer.config import TrainConfig
from trainer.formatting import show

FORMAT_USAGE = "python -m trainer format --task TASK --model MODEL --in FILE [--show N]"
PLAN_USAGE = "python -m trainer plan --model MODEL [--config FILE.json] [TRAINING FLAGS]"


def format_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer format", description=(
        "Show training examples as task messages and as the model's chat template, special tokens "
        "included, with the part the loss is computed on."))
    p.add_argument("--task", required=True, help="task name (tasks/<name>.yaml) or a path to a task YAML")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model whose chat template to use")
    p.add_argument("--in", dest="inputs", nargs="+", required=True, metavar="FILE", help="input file(s)")
    p.add_argument("--show", type=int, default=3, help="how many examples to print (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the instruction-paraphrase choice")
    add_input_args(p)
    return p


def train_parser() -> argparse.ArgumentParser:
    """Every `TrainConfig` field as a flag (`--max-steps` and `--max_steps`; help from the field's metadata),
    plus the column mapping of non-record inputs."""
    from transformers import HfArgumentParser

    p = HfArgumentParser(
        TrainConfig, prog="python -m trainer", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="LoRA supervised fine-tuning (loss on assistant tokens only). Writes the adapter in PEFT "
                    "format, training_summary.json and loss_curve.png to --out. 'default: None' means a "
                    "model-dependent default (by model size: tiny, 1b, 3b, 8b; see trainer/config.py). "
                    f"See also: {FORMAT_USAGE}; {PLAN_USAGE}")
    # `--modules-to-save` with no module names means "none" (an empty list), as before.
    next(a for a in p._actions if a.dest == "modules_to_save").nargs = "*"
    # `--gradient-checkpointing` alone means on; `--gradient-checkpointing false` off; absent: the plan decides.
    checkpointing = next(a for a in p._actions if a.dest == "gradient_checkpointing")
    checkpointing.nargs, checkpointing.const = "?", True
    add_input_args(p)
    return p


def run_format(argv: list[str]) -> int:

    args = format_parser().parse_args(argv)
    task = load_task(args.task)
    records = load_inputs(args.inputs, task, columns_from_args(args))
    print(show(records, task, load_tokenizer(args.model), n=args.show, seed=args.seed))
    return 0


def run_train(argv: list[str]) -> int:
    from trainer.sft import SUMMARY_FILE, train

    config, args = train_parser().parse_args_into_dataclasses(args=argv)
    columns = columns_from_args(args)
    records = load_inputs(config.train, load_task(config.task), columns) if columns else None
    summary = train(config, records=records)
    keys = ["steps", "train_loss", "val_loss", "wall_clock_s", "tokens_per_s", "peak_memory_mb",
            "trainable_params", "total_params", "stopped_early"]
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    print(f"adapter, {SUMMARY_FILE} and loss_curve.png in {summary['adapter_dir']}", file=sys.stderr)
    return 0


def plan_parser() -> argparse.ArgumentParser:
    """The training flags (every `TrainConfig` field; `--train` not needed) plus what the plan itself takes."""
    p = train_parser()
    p.prog = "python -m trainer plan"
    p.description = (
        "Memory plan of a training run, before loading any weight (no download): parameters, trainable state "
        "and AdamW moments, activations with and without gradient checkpointing at full --max-length, or at the "
        "longest example of --train FILE when given (its tokens counted with the model's template), TRL's "
        "chunked LM head, and whether it fits a card. Without --task it plans run.py's training "
        "(support_intent with its task defaults); with --task, the trainer command's.")
    next(a for a in p._actions if a.dest == "train").required = False
    p.add_argument("--config", type=Path, metavar="FILE", help="JSON object of TrainConfig fields (run.py's "
                   "--config); flags given here override it")
    p.add_argument("--memory-gib", type=float, default=24.0, help="memory of the card to fit (GiB)")
    p.add_argument("--reserved-gib", type=float, default=1.0, help="of which the CUDA context and libraries keep")
    p.add_argument("--regime", choices=("cuda", "cpu", "cpu-bf16"), default=None,
                   help="how training runs: cuda (bf16 + autocast; default unless --device cpu) or cpu (fp32)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    return p


def run_plan(argv: list[str]) -> int:
    from trainer.plan_report import config_file, plan_json, report

    p = plan_parser()
    config_arg = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"), None)
    overrides = config_file(Path(config_arg)) if config_arg else {}
    unknown = sorted(set(overrides) - set(TrainConfig.field_names()))
    if unknown:
        raise UserError(f"{config_arg}: unknown setting '{unknown[0]}' (known: {', '.join(TrainConfig.field_names())})")
    if not any(a == "--task" or a.startswith("--task=") for a in argv):  # run.py's training config
        overrides = {"task": "support_intent", "task_defaults": True, **overrides}
    p.set_defaults(**overrides)
    config, args = p.parse_args_into_dataclasses(args=argv)
    cfg = config.resolved()
    regime = args.regime or ("cpu" if (cfg.device or "").startswith("cpu") else "cuda")
    text = plan_json if args.json else report
    print(text(cfg, regime, memory_gib=args.memory_gib, reserved_gib=args.reserved_gib,
               longest=longest_example(cfg) if cfg.train else None))
    return 0


def longest_example(cfg: TrainConfig) -> int:
    """Tokens of the longest example of `cfg.train` that fits max_length, as the trainer would format it."""
    from trainer.formatting import to_examples
    from trainer.lengths import fit_lengths

    task = load_task(cfg.task)
    records = [r for r in load_inputs(cfg.train, task) if task.label_name in r.labels]
    _kept, lengths = fit_lengths(load_tokenizer(cfg.model), to_examples(records, task, cfg.seed),
                                 [r.id for r in records], cfg.max_length)
    return lengths["max_tokens"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "format":
        return run_format(argv[1:])
    if argv and argv[0] == "plan":
        return run_plan(argv[1:])
    return run_train(argv)
