"""The memory plan as people read it: `python -m trainer plan` prints `report` (or `plan_json`).

    print(report(cfg, "cuda", memory_gib=24))    # the shape, every term with and without checkpointing, the fit
    overrides = config_file(Path("config.json"))  # run.py's --config: a JSON object of TrainConfig fields
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.errors import UserError
from trainer.plan import GIB, MARGIN, estimate, fit, regime_for
from trainer.shapes import model_shape


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def report(cfg: Any, device: str = "cuda", memory_gib: float = 24.0, reserved_gib: float = 1.0,
           longest: int | None = None) -> str:
    """The plan as text: the shape, every term with and without checkpointing, and the fit to a card.
    `longest`: the training data's longest example in tokens (else activations count full max_length)."""
    shape = model_shape(cfg.model)
    regime = regime_for(device)
    off = estimate(cfg, device, checkpointing=False, shape=shape, longest=longest)
    on = estimate(cfg, device, checkpointing=True, shape=shape, longest=longest)
    lora = cfg.method in {"lora", "qlora"}
    lines = [
        f"memory plan: {cfg.model}  ({shape.source}; nothing downloaded)",
        f"  shape: {shape.model_type}, {shape.layers} layers, hidden {shape.hidden}, heads {shape.heads}/"
        f"{shape.kv_heads} kv x {shape.head_dim}, MLP {shape.intermediate}, vocab {shape.vocab:,}"
        f"{', tied embeddings' if shape.tied else ''}; {shape.params / 1e9:.3f} B parameters",
        f"  run: {cfg.method}" + (f" r={cfg.lora_r} dropout {cfg.lora_dropout} on {','.join(shape.lora_targets(list(cfg.target_modules)))}"
                                  if lora else "")
        + (f"; batch {cfg.batch_size} x {off.max_length} tokens (the data's longest example; max_length "
           f"{cfg.max_length})" if longest else f"; batch {cfg.batch_size} x max_length {cfg.max_length}")
        + f", grad_accum {cfg.grad_accum}; {regime.name}"
        + f"; trainable {off.trainable / 1e6:.2f} M ({off.trainable / shape.params:.2%})",
        f"  {'term':<58}{'no checkpointing':>18}{'checkpointing':>16}",
    ]
    for key in off.parts:
        lines.append(f"  {key:<58}{gib(off.parts[key]):>18}{gib(on.parts[key]):>16}")
        if key.startswith("backward peak"):
            for note in ("LM head tile", "one layer in backward"):
                lines.append(f"  {'  ' + note:<58}{gib(off.notes[note]):>18}{gib(on.notes[note]):>16}")
    lines.append(f"  {'peak estimate':<58}{gib(off.peak):>18}{gib(on.peak):>16}")
    lines.append(f"  {f'needs free (x{MARGIN} margin)':<58}{gib(off.required):>18}{gib(on.required):>16}")
    for key, value in off.notes.items():
        if key.startswith("full fp32 logits"):
            lines.append(f"  ({key}: {gib(value)})")
    usable = int((memory_gib - reserved_gib) * GIB)
    configured = getattr(cfg, "gradient_checkpointing", None)
    as_set = {True: on, False: off, None: off}[configured if cfg.method != "qlora" else True]
    lines.append(f"  on a {memory_gib:g} GiB card ({reserved_gib:g} GiB kept for the CUDA context): as configured "
                 f"(checkpointing {'on' if as_set.checkpointing else 'off'}) "
                 + ("fits" if as_set.required <= usable else "does NOT fit"))
    _adapted, decision = fit(cfg, device, usable, shape=shape, longest=longest)
    lines.append("  training would run " + (decision.changed if decision.changed else "as configured")
                 + f": needs {gib(decision.required)} of {gib(usable)}"
                 + ("" if decision.fits else "  (does not fit even so)"))
    lines.append("  how far to trust it: on the CPU within -2%..+12% of the measured peak (activations within 2%, "
                 "bf16 autocast included);\n  on CUDA the kernels' own terms are modelled, expected within "
                 "±15%, not yet measured on a card (docs/training.md#memory-plan)")
    return "\n".join(lines)


def plan_json(cfg: Any, device: str = "cuda", memory_gib: float = 24.0, reserved_gib: float = 1.0,
              longest: int | None = None) -> str:
    shape = model_shape(cfg.model)
    usable = int((memory_gib - reserved_gib) * GIB)
    _adapted, decision = fit(cfg, device, usable, shape=shape, longest=longest)
    out = {"shape": {k: v for k, v in asdict(shape).items() if k != "linears"}, "longest_example": longest,
           "no_checkpointing": estimate(cfg, device, checkpointing=False, shape=shape, longest=longest).as_dict(),
           "checkpointing": estimate(cfg, device, checkpointing=True, shape=shape, longest=longest).as_dict(),
           "fit": decision.as_dict(), "memory_gib": memory_gib, "reserved_gib": reserved_gib, "margin": MARGIN}
    return json.dumps(out, indent=2)


def config_file(path: Path | None) -> dict[str, Any]:
    """A JSON object of TrainConfig fields (run.py's --config), or {} without a path."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the config must be a JSON object of TrainConfig fields")
    return data
