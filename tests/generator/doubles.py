"""TEST DOUBLES for the runs to N accepted samples: a planted validator, and a launcher that registers it.

`OneInThreeDouble` is not a check of anything: it passes exactly the samples whose plan index is a multiple
of three, so a test knows the acceptance rate (1/3) in advance. `LAUNCH` runs `generate.py`'s `main` in a
child process with the double registered (a subprocess is what a SIGKILL or a Ctrl-C needs).
"""

from __future__ import annotations

from typing import ClassVar

from core.records import Record, Verdict
from tests.cli_helpers import REPO
from validators.base import BaseValidator

NAME = "one_in_three_double"
ENTRY = "tests.generator.doubles:OneInThreeDouble"
LAUNCH = (f"import sys; from validators.base import REGISTRY; REGISTRY[{NAME!r}] = {ENTRY!r}; "
          "from core.errors import run_cli; from loop.cli import main; run_cli(main, sys.argv[1:])")


class OneInThreeDouble(BaseValidator):
    """TEST DOUBLE: passes a sample when its plan index is a multiple of 3, whatever it says."""

    name = NAME
    defaults: ClassVar[dict] = {}

    def check(self, records: list[Record]) -> list[Verdict]:
        return [self.verdict(r.provenance["index"] % 3 == 0, None, "" if r.provenance["index"] % 3 == 0
                             else "planted: not a multiple of 3", rule="planted") for r in records]


def planted_task(folder) -> str:
    """fin_sentiment with short texts (fast on the tiny model) and the chain: schema, then the double."""
    text = (REPO / "tasks" / "fin_sentiment.yaml").read_text(encoding="utf-8")
    text = text.replace("max_chars: 320", "max_chars: 60")
    path = folder / "fin_planted.yaml"
    path.write_text(text.split("\nvalidators:\n")[0] + f"\nvalidators:\n  - name: schema\n  - name: {NAME}\n",
                    encoding="utf-8")
    return str(path)
