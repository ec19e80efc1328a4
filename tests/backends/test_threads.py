"""OpenMP threads sleep rather than spin when they wait (backends/__init__.py): the setting only works when
it is in the environment before torch loads, so every command must import `backends` before torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli_helpers import child_env

# Records OMP_WAIT_POLICY at the moment torch is first imported, then imports the command's module.
SPY = """
import os, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
sys.meta_path.insert(0, Spy())
sys.argv = ["x"]
import {module}
import torch
print(seen[0])
"""

# run.py imports its pipeline (and so `backends`) inside main, before `pin_determinism` loads torch.
ENTRY_POINTS = ["demo", "generate", "run, oneshot.pipeline", "trainer.cli", "evaluator.cli", "loop.cli",
                "validators.__main__"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_command_sets_the_wait_policy_before_torch_loads(module, repo):
    env = child_env()
    env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([sys.executable, "-c", SPY.format(module=module)], cwd=repo, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[-1] == "PASSIVE"


def test_a_users_own_setting_is_kept(repo):
    env = {**child_env(), "OMP_WAIT_POLICY": "ACTIVE"}
    out = subprocess.run([sys.executable, "-c", "import backends, os; print(os.environ['OMP_WAIT_POLICY'])"],
                         cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ACTIVE"]
