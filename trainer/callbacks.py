"""Trainer callbacks: a wall-clock budget that stops training cleanly (the demo and run.py rely on it)."""

from __future__ import annotations

import time

from transformers import TrainerCallback


class TimeBudget(TrainerCallback):
    """Stop after the step that would leave too little time for one more step, the evaluation and the save.

    Args:
        budget_s: total seconds the whole `train()` call may take.
        start: `time.perf_counter()` when the budget started (before model loading and tokenisation).
    """

    def __init__(self, budget_s: float, start: float):
        self.budget_s = budget_s
        self.start = start
        self.stopped = False
        self._train_start: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._train_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        per_step = (now - (self._train_start or self.start)) / max(state.global_step, 1)
        # Two steps of margin: one for the step itself, one for the evaluation and saving that follow.
        if now - self.start + 2 * per_step >= self.budget_s and state.global_step < state.max_steps:
            self.stopped = True
            control.should_training_stop = True
        return control
