"""User-facing errors and the wrapper that turns them into one clean line and exit code 2.

Every command's `main()` is run through `run_cli`, so bad input (a missing file, a malformed
line, an unknown task) prints `error: <file>:<line>: <what>` instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    """Bad input or configuration that the user can fix; printed as one line, never a traceback."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> NoReturn:
    """Run a command's `main(argv)` and exit: 0 on success, 2 on a `UserError`, 130 on Ctrl-C."""
    try:
        code = main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
