"""`python -m generator ...` is the same command as `python generate.py ...`."""

from core.errors import run_cli
from generator.cli import main

if __name__ == "__main__":
    run_cli(main)
