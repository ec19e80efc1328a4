"""The whole loop in one command: `make demo` (or `python demo.py --help`).

    python demo.py                                   # offline, tiny model, minutes on a laptop CPU
    python demo.py --full --model unsloth/Llama-3.2-1B-Instruct --backend vllm   # GPU, mission sizes

data (../shared/datasets when present, else data/samples) -> generate a synthetic English set ->
validators -> review queue -> DEMO ONLY unattended review by reviewer 'auto' -> export curated ->
train on real + curated -> evaluate base vs tuned -> ablation (real only) -> summary.

Each stage prints `== [k/N] name` and records itself in `<out>/.stages/<name>.json` when it has
finished; a re-run reuses every finished stage whose settings are unchanged (and re-runs the ones
after a changed one). `<out>/summary.json` holds every headline number and artifact path.
"""

from __future__ import annotations

import argparse

from backends.models import DEFAULT_MODEL
from core.errors import run_cli
from core.help import DefaultsHelpFormatter
from loop.demo import run_demo


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python demo.py", description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="folder for every artifact")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="smollm2-135m or gemma3-270m (real weights, offline), tiny (random: fast runs), or a Hub id / "
                        "local folder")
    p.add_argument("--backend", default="transformers", choices=["transformers", "vllm"],
                   help="generation and evaluation backend (training always uses transformers)")
    p.add_argument("--full", action="store_true",
                   help="the mission's sizes: 3,000 + 250 real per language, 500 synthetic")
    p.add_argument("--source", default=None,
                   help="data source folder or file (default: ../shared/datasets when present, else data/samples)")
    p.add_argument("--train-per-lang", type=int, default=None, help="default: 3000, or 40 on data/samples")
    p.add_argument("--eval-per-lang", type=int, default=None, help="default: 250, or 10 on data/samples")
    p.add_argument("--n-synthetic", type=int, default=None, help="synthetic English samples (default 40; 500 with --full)")
    p.add_argument("--epochs", type=float, default=None, help="training epochs (default: the trainer's for the model)")
    p.add_argument("--learning-rate", type=float, default=None, help="default: the trainer's for the model")
    p.add_argument("--max-steps", type=int, default=-1, help="cap training steps (tests); -1 = no cap")
    p.add_argument("--seed", type=int, default=0, help="seeds every stage")
    p.add_argument("--fresh", action="store_true", help="delete --out first and run every stage")
    ablation = p.add_mutually_exclusive_group()
    ablation.add_argument("--ablation", dest="ablation", action="store_true", default=None,
                          help="also train on real data only, twice (another seed: the noise floor), and evaluate "
                               "both (default: on, except for a real model on a CPU, where it would add two trainings "
                               "to the 20-minute demo)")
    ablation.add_argument("--no-ablation", dest="ablation", action="store_false", help="skip the ablation")
    p.add_argument("--human-review", action="store_true",
                   help="people review the queue in the app instead of the unattended 'auto' step: the demo "
                        "stops after filling the queue and goes on when re-run once every item is decided")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_demo(build_parser().parse_args(argv))

if __name__ == "__main__":
    run_cli(main)
