from core.errors import run_cli
from trainer.cli import main

if __name__ == "__main__":
    run_cli(main)
