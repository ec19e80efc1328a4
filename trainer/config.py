"""Training settings: one dataclass, with defaults chosen per model size.

`None` means "the default for this model": the 1B defaults are the usual LoRA recipe for a Llama 3.2 1B
on one GPU; the tiny model's are tuned so that, starting from random weights, it beats the majority
class on real data in a few CPU minutes (see docs/training.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from core.models import TINY, is_tiny

Method = Literal["lora", "qlora", "full"]
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Model-dependent defaults, filled in where a field is None.
DEFAULTS_1B: dict[str, Any] = {
    "learning_rate": 2e-4, "epochs": 2.0, "batch_size": 8, "grad_accum": 2, "max_length": 512,
    "lora_r": 16, "lora_alpha": 32, "modules_to_save": [],
}
DEFAULTS_TINY: dict[str, Any] = {
    # Random embeddings carry no meaning, so the tiny models (`tiny`, `tiny-llama3`) train them and the
    # head in full; tiny-llama3's are tied, and stay one matrix (sft.py: ensure_weight_tying).
    # 1e-3: at 2e-3 one seed in two stalled on a plateau that never predicts neutral (docs/findings.md).
    "learning_rate": 1e-3, "epochs": 1.0, "batch_size": 16, "grad_accum": 1, "max_length": 256,
    "lora_r": 16, "lora_alpha": 32, "modules_to_save": ["embed_tokens", "lm_head"],
}
FULL_LR = {"tiny": 1e-3, "1b": 2e-5}  # full fine-tuning wants a smaller step than LoRA


@dataclass
class TrainConfig:
    """Everything one training run needs; `train(config)` writes to `out`."""

    task: str = "fin_sentiment"
    model: str = TINY
    train: list[str] = field(default_factory=list)
    out: str = "runs/adapter"
    method: Method = "lora"
    learning_rate: float | None = None
    epochs: float | None = None
    max_steps: int = -1
    batch_size: int | None = None
    grad_accum: int | None = None
    max_length: int | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(ALL_LINEAR))
    modules_to_save: list[str] | None = None
    packing: bool = False
    group_by_length: bool = True
    val_fraction: float = 0.1
    seed: int = 0
    time_budget_s: float | None = None
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    logging_steps: int = 10
    merge: bool = False
    push_to_hub: str | None = None
    device: str | None = None

    def resolved(self) -> TrainConfig:
        """A copy with every model-dependent `None` replaced by its default."""
        size = "tiny" if is_tiny(self.model) else "1b"  # `tiny` and `tiny-llama3`: both random weights
        defaults = dict(DEFAULTS_TINY if size == "tiny" else DEFAULTS_1B)
        if self.method == "full":
            defaults["learning_rate"] = FULL_LR[size]
        updates = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return replace(self, **updates)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
