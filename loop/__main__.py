"""`python -m loop ...` is the same command as `python generate.py ...`."""

from core.errors import run_cli
from loop.cli import main

if __name__ == "__main__":
    run_cli(main)
