"""Every training example is length-checked before TRL sees it: never train on a truncated answer.

    kept, report = fit_lengths(tokenizer, examples, names, max_length=2048)

TRL truncates a tokenised example to `max_length` from the end (`truncation_mode="keep_start"`), and the
answer is at the end: an example over the limit would train on a cut answer, with no end-of-turn token.
Each example is tokenised as it is trained on (`trainer.formatting.loss_tokens`: the family's chat
template over prompt + completion). An example may come as a list of candidates, longest first (run.py's
prompt with k solved neighbours, then k - 1, ... 0): the first that fits is trained on, with a warning
when it is not the first; an example of which nothing fits is skipped with a warning naming it.
A candidate's optional "shortened" entry says what its shortening dropped (for the warning).
"""

from __future__ import annotations

import sys
from typing import Any

from trainer.formatting import loss_tokens

Example = dict[str, Any]


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def token_length(tokenizer: Any, example: Example) -> int:
    """Tokens of the example exactly as it is trained on (`trainer.formatting.loss_tokens`)."""
    return len(loss_tokens(tokenizer, example)[0])


def fit_lengths(tokenizer: Any, examples: list[Example | list[Example]], names: list[str], max_length: int,
                *, split: str = "train") -> tuple[list[Example], dict[str, Any]]:
    """The examples that fit `max_length` tokens (each the first candidate that does), and what was done.

    Args:
        examples: an example, or its candidates longest first, per record.
        names: how a warning names each record (a row id, a record id).
        split: "train" or "eval", for the warnings.

    Returns:
        (kept examples, {"checked", "shortened": [names], "skipped": [names], "max_tokens"}), kept in order.
    """
    kept: list[Example] = []
    shortened: list[str] = []
    skipped: list[str] = []
    longest = 0
    for name, item in zip(names, examples, strict=True):
        candidates = item if isinstance(item, list) else [item]
        first_length = None
        for k, candidate in enumerate(candidates):
            length = token_length(tokenizer, candidate)
            first_length = length if first_length is None else first_length
            if length <= max_length:
                note = candidate.get("shortened")
                if k:
                    shortened.append(name)
                    warn(f"{split} {name}: {first_length} tokens > max_length {max_length}; "
                         f"{note or f'shortened to candidate {k + 1} of {len(candidates)}'} ({length} tokens)")
                kept.append({key: v for key, v in candidate.items() if key != "shortened"})
                longest = max(longest, length)
                break
        else:
            skipped.append(name)
            tried = f" ({length} in the shortest of {len(candidates)} forms)" if len(candidates) > 1 else ""
            warn(f"{split} {name}: {first_length} tokens{tried} > max_length {max_length}; skipped, its answer "
                 f"would be truncated (raise --max-length to keep it)")
    return kept, {"checked": len(examples), "shortened": shortened, "skipped": skipped, "max_tokens": longest}
