"""The whole loop, offline, on the tiny model: `make demo` (or `python demo.py --help`).

Stages run in order and each one is skipped when its outputs already exist, so a re-run resumes.
"""

from __future__ import annotations

import argparse

from core.errors import run_cli
from core.models import load_tokenizer, tiny_model_path
from core.tasks import available_tasks, load_task


def stage_foundation() -> None:
    path = tiny_model_path()
    tokenizer = load_tokenizer("tiny")
    print(f"[tiny model] {path} (vocab {len(tokenizer)})")
    for name in available_tasks():
        task = load_task(name)
        print(f"[task] {name}: {len(task.label_names)} labels, languages {', '.join(task.languages)}")
    fin = load_task("fin_sentiment")
    prompt = tokenizer.apply_chat_template(
        fin.training_messages("Operating profit rose to EUR 13.1 mn.", "en", {"label": "positive"}), tokenize=False
    )
    print(f"[chat template] one training example as the model sees it:\n{prompt}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python demo.py", description=__doc__)
    parser.parse_args(argv)
    stage_foundation()
    return 0


if __name__ == "__main__":
    run_cli(main)
