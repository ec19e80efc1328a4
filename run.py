"""One-shot contract: train a LoRA adapter on support tickets and predict intent + reply for each val row.

    python run.py --train train.jsonl --val val.jsonl --weights DIR --output results.json [--base-model tiny]

train.jsonl rows: {"id", "ticket", "intent", "ideal_reply"}; val.jsonl rows: {"id", "ticket"}.
Writes the adapter (standard PEFT files) to DIR and results.json:
    {"training": {"steps", "train_loss", "val_loss", "wall_clock_s", "decision", ...},
     "predictions": [{"id", "prediction", "predicted_intent", "latency_ms", "tokens_used"}, ...]}

Retrieval is the backbone and the fine-tuned model sits on top; what was chosen is under training.decision.
A bad row is a warning; only an unreadable file or no usable training row is an error (exit code 2).
How the decision is made: docs/oneshot.md#design-runpy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import UserError, run_cli
from oneshot import pin_environment

DEFAULT_BASE_MODEL = "unsloth/Llama-3.2-3B-Instruct"


def load_config(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the JSON config ({exc})") from None
    from trainer.config import TrainConfig

    if not isinstance(config, dict):
        raise UserError(f"{path}: the config must be a JSON object of TrainConfig fields")
    unknown = sorted(set(config) - set(TrainConfig.field_names()))
    if unknown:
        raise UserError(f"{path}: unknown setting '{unknown[0]}' (known: {', '.join(TrainConfig.field_names())})")
    return config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="training rows: id, ticket, intent, ideal_reply")
    parser.add_argument("--val", type=Path, required=True, help="rows to predict: id, ticket")
    parser.add_argument("--weights", type=Path, required=True, help="folder for the LoRA adapter")
    parser.add_argument("--output", type=Path, required=True, help="results.json to write")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL,
                        help="Hub id, local folder, or an offline CPU model ('tiny', 'tiny-llama3', 'tiny-qwen2', "
                             "'tiny-mistral', 'tiny-gemma', 'tiny-phi3'); "
                             f"default {DEFAULT_BASE_MODEL}")
    parser.add_argument("--seed", type=int, default=0, help="seed for training, folds and decoding (default 0)")
    parser.add_argument("--time-budget-s", type=float, default=1500.0,
                        help="wall-clock budget for the whole call; the cross-fit is skipped and training stops "
                             "early to leave time to predict (default 1500)")
    parser.add_argument("--retrieval", choices=("auto", "off", "only"), default="auto",
                        help="auto: cross-fitting chooses how much to trust retrieval vs the model (default); "
                             "off: no neighbours, the model decides; only: retrieval decides")
    parser.add_argument("--neighbours", type=int, default=None,
                        help="solved training tickets shown in each prompt (default 4; 1 for the tiny models; "
                             "0 = none)")
    parser.add_argument("--encoder", default="bundled:all-MiniLM-L6-v2",
                        help="sentence-transformers model id or folder for retrieval (default: the bundled "
                             "all-MiniLM-L6-v2, offline)")
    parser.add_argument("--folds", type=int, default=2, help="cross-fitting folds (default 2; 0 = no cross-fit)")
    parser.add_argument("--config", type=Path, help="JSON file overriding training settings (TrainConfig fields)")
    parser.add_argument("--max-cost-usd", type=float, default=3.0,
                        help="hard spend cap for the optional API augmentation (default 3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.neighbours is not None and args.neighbours < 0:
        raise UserError(f"--neighbours must be 0 or more, got {args.neighbours}")
    from oneshot import pin_determinism
    from oneshot.pipeline import Options, run

    pin_determinism(args.seed)
    run(Options(train=args.train, val=args.val, weights=args.weights, output=args.output,
                base_model=args.base_model, seed=args.seed, time_budget_s=args.time_budget_s,
                retrieval=args.retrieval, neighbours=args.neighbours, encoder=args.encoder, folds=args.folds,
                overrides=load_config(args.config), max_cost_usd=args.max_cost_usd))
    return 0


if __name__ == "__main__":
    pin_environment()
    run_cli(main)
