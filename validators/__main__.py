"""`python -m validators --task NAME --in SAMPLES.jsonl --out DIR`; see `--help`."""

from core.errors import run_cli
from validators.cli import main

if __name__ == "__main__":
    run_cli(main)
