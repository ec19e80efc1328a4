"""Generate labelled synthetic samples from seed examples: the data engineers' command.

    python generate.py --task fin_sentiment --lang en --n 500 --model tiny \\
        --seeds runs/fin/data/train.jsonl --out runs/fin/synthetic

Writes `<out>/samples.jsonl` (every sample, parsed or not, appended as it goes) and
`<out>/manifest.json` (config, versions, counts, tokens, time, diversity). Re-running the same
command after a crash continues where it stopped. Then, when the packages exist, it runs the
task's validator chain (`accepted.jsonl`, `rejected.jsonl`, `validation.json`) and queues the
accepted samples for review (`review.db`). From Python: `loop.generate.generate(task=..., lang=..., n=..., ...)`;
the parser and `main(argv)` live in `loop/cli.py` (shared with `python -m loop`).
"""

from __future__ import annotations

import sys

from core.errors import run_cli
from loop.cli import build_parser, main
from loop.generate import generate, post_process

__all__ = ["build_parser", "generate", "main", "post_process"]

if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
