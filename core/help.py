"""The `--help` formatter of the commands whose options mostly carry their defaults.

    argparse.ArgumentParser(..., formatter_class=DefaultsHelpFormatter)
"""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where X says something: not for None or an unset flag, and not where
    the help text already states its default in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text.lower():
            return text
        return super()._get_help_string(action)
