"""One-shot contract: train a LoRA adapter on support tickets and predict intent + reply for each val row.

    python run.py --train train.jsonl --val val.jsonl --weights DIR --output results.json [--base-model tiny]

train.jsonl rows: {"id", "ticket", "intent", "ideal_reply"}; val.jsonl rows: {"id", "ticket"}.
Writes the adapter (standard PEFT files) to DIR and results.json:
    {"training": {"steps", "train_loss", "val_loss", "wall_clock_s", "decision", ...},
     "predictions": [{"id", "prediction", "predicted_intent", "latency_ms", "tokens_used"}, ...]}

Retrieval is the backbone and the fine-tuned model sits on top; what was chosen is under training.decision.
A bad row is a warning; only an unreadable file, no usable training row or a bad --config is an error
(exit code 2). A failure in training or in the model's predictions falls back to retrieval, still
writes results.json and names the reason under training.
How it decides, the time plan and measured results: README.md (docs/oneshot.md in the toolkit).
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # the time budget counts from here, before the heavy imports

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from core.errors import UserError, run_cli  # noqa: E402
from oneshot import pin_environment  # noqa: E402
from oneshot.contract import read_train, read_val  # noqa: E402

DEFAULT_BASE_MODEL = "unsloth/Llama-3.2-3B-Instruct"
# TrainConfig fields run.py sets itself: a config cannot move them (and must not clash with them).
SET_BY_RUN = {"seed": "use --seed", "model": "use --base-model", "out": "use --weights", "train": "use --train",
              "time_budget_s": "use --time-budget-s", "task": "run.py's task is support_intent",
              "val_fraction": "held-out rows come from the cross-fit folds: use --folds",
              "task_defaults": "run.py always applies the support_intent defaults"}


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
    reserved = [key for key in config if key in SET_BY_RUN]
    if reserved:
        raise UserError(f"{path}: '{reserved[0]}' is set by run.py itself ({SET_BY_RUN[reserved[0]]})")
    known = [name for name in TrainConfig.field_names() if name not in SET_BY_RUN]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise UserError(f"{path}: unknown setting '{unknown[0]}' (known: {', '.join(known)})")
    return config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="training rows: id, ticket, intent, ideal_reply")
    parser.add_argument("--val", type=Path, required=True, help="rows to predict: id, ticket")
    parser.add_argument("--weights", type=Path, required=True, help="folder for the LoRA adapter")
    parser.add_argument("--output", type=Path, required=True, help="results.json to write")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL,
                        help="Hub id, local folder, or an offline model: real weights ('smollm2-135m', "
                             "'gemma3-270m') or tiny random ones ('tiny', 'tiny-llama3', 'tiny-qwen2', 'tiny-mistral', "
                             f"'tiny-gemma', 'tiny-phi3'); default {DEFAULT_BASE_MODEL}; when it cannot be loaded "
                             "here (no hub access), the packaged smollm2-135m is trained instead (training.base_model_fallback)")
    parser.add_argument("--seed", type=int, default=0, help="seed for training, folds and decoding (default 0)")
    parser.add_argument("--time-budget-s", type=float, default=1500.0,
                        help="wall-clock budget for the whole call, from the process start: every step plans "
                             "inside it and leaves time to predict (default 1500, under a 1800 s ceiling)")
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
    parser.add_argument("--config", type=Path,
                        help="JSON object overriding training settings (TrainConfig fields other than those "
                             "run.py sets: seed, model, out, train, time_budget_s, task, val_fraction, "
                             "task_defaults)")
    parser.add_argument("--max-cost-usd", type=float, default=3.0,
                        help="hard spend cap for the optional API augmentation (default 3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.neighbours is not None and args.neighbours < 0:
        raise UserError(f"--neighbours must be 0 or more, got {args.neighbours}")
    overrides = load_config(args.config)  # a bad config is refused before anything runs
    # A bad file fails here, in a second: the rows are read before torch and the models are imported.
    rows = read_train(args.train), read_val(args.val)
    from oneshot import pin_determinism
    from oneshot.pipeline import Options, run

    pin_determinism(args.seed)
    run(Options(train=args.train, val=args.val, weights=args.weights, output=args.output,
                base_model=args.base_model, seed=args.seed, time_budget_s=args.time_budget_s,
                retrieval=args.retrieval, neighbours=args.neighbours, encoder=args.encoder, folds=args.folds,
                overrides=overrides, max_cost_usd=args.max_cost_usd, started=STARTED), rows)
    return 0


if __name__ == "__main__":
    pin_environment()
    run_cli(main)
