"""The one-shot support-ticket contract behind `run.py`: retrieval as the backbone, a LoRA model on top.

Modules: `contract` (the files), `knn` (retrieval's intent view), `prompts` (what the model sees),
`adapter` (training, scoring, replies), `decide` (how much to trust each), `pipeline` (the run).
"""

from __future__ import annotations

import os
import random

# Bitwise-repeatable CPU math for a given seed. MKL picks code paths by memory alignment and may use
# fewer threads when the machine is busy (MKL_DYNAMIC), and either changes float reduction order:
# that is how one run in four on a loaded machine trained to a different loss. These must be set
# before torch is imported; `pin_determinism` then fixes the torch side.
_ENV = {"MKL_CBWR": "AUTO", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "TOKENIZERS_PARALLELISM": "false"}


def pin_environment() -> None:
    for key, value in _ENV.items():
        os.environ.setdefault(key, value)


def pin_determinism(seed: int) -> None:
    """Fixed thread count, deterministic kernels, seeded RNGs (call after `pin_environment`)."""

    import numpy as np
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS") or min(4, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
