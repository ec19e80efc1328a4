"""Training settings: one dataclass, with defaults chosen per model size.

    size = model_size("unsloth/Llama-3.2-3B-Instruct")             # "3b"
    defaults = defaults_for("tiny", method="lora", task="support_intent")
    config = TrainConfig(model="unsloth/Llama-3.2-1B-Instruct").resolved()

`None` means "the default for this model" (`SIZE_DEFAULTS`; `TASK_DEFAULTS` too with `task_defaults=True`).
Every field carries its `--help` text in `metadata`: `trainer/cli.py` derives the command line from
this dataclass, so a new setting is one field here.
Why these defaults: docs/training.md#design-trainerconfigpy
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from typing import Any, Literal

from backends.models import DEFAULT_MODEL, is_packaged, is_tiny, resolve_model

Method = Literal["lora", "qlora", "full"]
Size = Literal["tiny", "small", "1b", "3b", "8b"]
# PEFT's name for every linear layer but the output head, whatever a family calls them: Llama's q/k/v/o and
# gate/up/down projections, Phi-3's fused qkv_proj and gate_up_proj (which a list of Llama names misses).
ALL_LINEAR = "all-linear"

# Model-dependent defaults, filled in where a field is None. One row per size.
SIZE_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {
        # Random embeddings carry no meaning, so the tiny models (`tiny`, `tiny-llama3`) train them and the
        # head in full; tiny-llama3's are tied, and stay one matrix (sft.py: ensure_weight_tying).
        # 1e-3: at 2e-3 one seed in two stalled on a plateau that never predicts neutral (docs/findings.md).
        "learning_rate": 1e-3, "epochs": 1.0, "batch_size": 16, "grad_accum": 1, "max_length": 256,
        "lora_r": 16, "lora_alpha": 32, "modules_to_save": ["embed_tokens", "lm_head"],
    },
    # Real models under 0.5B parameters (smollm2-135m, gemma3-270m) on a CPU: LoRA only, a larger step than
    # 1B in one epoch (few, short runs). On a dev split carved from the training pool (300 balanced rows,
    # 150 dev; docs/findings.md#real-weights) smollm2-135m reached 50.7% at 1e-3 for one epoch against 48.0%
    # at 5e-4, and one epoch is half the demo's training time.
    "small": {"learning_rate": 1e-3, "epochs": 1.0, "batch_size": 8, "grad_accum": 1, "max_length": 512,
              "lora_r": 16, "lora_alpha": 32, "modules_to_save": []},
    "1b": {"learning_rate": 2e-4, "epochs": 2.0, "batch_size": 8, "grad_accum": 2, "max_length": 512,
           "lora_r": 16, "lora_alpha": 32, "modules_to_save": []},
    "3b": {"learning_rate": 2e-4, "epochs": 2.0, "batch_size": 4, "grad_accum": 4, "max_length": 512,
           "lora_r": 16, "lora_alpha": 32, "modules_to_save": []},
    "8b": {"learning_rate": 1e-4, "epochs": 2.0, "batch_size": 2, "grad_accum": 8, "max_length": 512,
           "lora_r": 16, "lora_alpha": 32, "modules_to_save": []},
}
# Full fine-tuning wants a smaller step than LoRA.
FULL_LR: dict[str, float] = {"tiny": 1e-3, "small": 5e-5, "1b": 2e-5, "3b": 1e-5, "8b": 1e-5}
# Task-specific overrides on top of SIZE_DEFAULTS: task -> size -> settings ("*" for every non-tiny size).
TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    # Support tickets are few (about 30) and run.py's prompts hold k solved neighbours: more epochs than
    # the sentiment defaults and a max length that fits system prompt + neighbours + ticket + JSON
    # answer. The tiny models are noise whatever they train on: a short run that proves the path on a CPU.
    # One 2048-token row per device step, four accumulated (the effective batch of 4 it always had): at
    # batch 4 a 3B model's activations alone are ~39 GiB (`python -m trainer plan`); at batch 1 the 1B-3B
    # models fit a 24 GiB card without recomputation, and the memory plan turns checkpointing on for 7B.
    "support_intent": {
        "tiny": {"epochs": 2.0, "max_length": 1024, "batch_size": 8, "grad_accum": 1},
        "*": {"epochs": 4.0, "max_length": 2048, "batch_size": 1, "grad_accum": 4, "learning_rate": 2e-4},
    },
}

# Upper bounds (parameters) of the non-tiny sizes; anything larger is "8b".
_SIZE_BOUNDS = (("small", 0.5e9), ("1b", 2.0e9), ("3b", 5.0e9))
_NAME_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)([bBmM])(?![a-zA-Z])")


@dataclass
class TrainConfig:
    """Everything one training run needs; `train(config)` writes to `out`."""

    task: str = field(default="fin_sentiment", metadata={"help": "task name or path to a task YAML"})
    model: str = field(default=DEFAULT_MODEL, metadata={
        "help": "an offline model (smollm2-135m, gemma3-270m: real weights; tiny*: random) or a Hub id / local folder"})
    train: list[str] = field(default_factory=list, metadata={
        "help": "training file(s), concatenated", "required": True, "metavar": "FILE"})
    out: str = field(default="runs/adapter", metadata={"help": "output folder (adapter, summary, loss curve)"})
    method: Method = field(default="lora", metadata={
        "help": "qlora: 4-bit base model, needs CUDA and bitsandbytes; full: every weight trained"})
    learning_rate: float | None = field(default=None, metadata={"help": "peak learning rate", "aliases": ["--lr"]})
    epochs: float | None = field(default=None, metadata={"help": "number of epochs"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many steps (-1: epochs)"})
    batch_size: int | None = field(default=None, metadata={"help": "examples per device step"})
    grad_accum: int | None = field(default=None, metadata={"help": "gradient accumulation steps"})
    max_length: int | None = field(default=None, metadata={"help": "max tokens per example (or per packed row)"})
    lora_r: int | None = field(default=None, metadata={"help": "LoRA rank"})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    target_modules: list[str] = field(default_factory=lambda: [ALL_LINEAR], metadata={
        "help": "modules that get LoRA adapters ('all-linear': every linear layer but the output head)"})
    modules_to_save: list[str] | None = field(default=None, metadata={
        "help": "modules trained in full and saved with the adapter (tiny: embed_tokens lm_head; "
                "the flag alone: none)"})
    gradient_checkpointing: bool | None = field(default=None, metadata={
        "help": "recompute activations during backward (much less memory, about a third more compute); "
                "default: the memory plan turns it on when the run would not fit otherwise (qlora: always on)"})
    memory_plan: bool = field(default=True, metadata={
        "help": "fit the device batch (grad_accum keeps the effective batch) and checkpointing to the free "
                "memory by trainer/plan.py's estimate; --no-memory-plan trains exactly as configured"})
    packing: bool = field(default=False, metadata={"help": "pack examples into rows (padding-free, BFD)"})
    group_by_length: bool = field(default=True, metadata={
        "help": "batches of similar lengths (less padding); --no-group-by-length: random batches"})
    val_fraction: float = field(default=0.1, metadata={"help": "held-out share for eval loss"})
    seed: int = field(default=0, metadata={"help": "seed for data order, LoRA init, dropout, val split"})
    time_budget_s: float | None = field(default=None, metadata={
        "help": "stop cleanly before this many seconds (recorded as stopped_early)", "aliases": ["--time-budget"]})
    warmup_ratio: float = field(default=0.05, metadata={"help": "linear warmup share of steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    logging_steps: int = field(default=10, metadata={"help": "log the train loss every N steps"})
    merge: bool = field(default=False, metadata={"help": "also write the merged model to OUT/merged"})
    push_to_hub: str | None = field(default=None, metadata={
        "help": "push the adapter to this Hub repo (token: HF_TOKEN)", "metavar": "REPO"})
    device: str | None = field(default=None, metadata={"help": "cpu or cuda (default: cuda when available)"})
    task_defaults: bool = field(default=False, metadata={
        "help": "also apply the task's own defaults (trainer/config.py TASK_DEFAULTS)"})

    def resolved(self) -> TrainConfig:
        """A copy with every model-dependent `None` replaced by its default."""
        defaults = defaults_for(self.model, method=self.method, task=self.task if self.task_defaults else None)
        updates = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return replace(self, **updates)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def defaults_for(model: str, *, method: str = "lora", task: str | None = None) -> dict[str, Any]:
    """The model-dependent defaults of `model` (by `model_size`), for `method`, plus `task`'s overrides."""
    size = model_size(model)
    out = {k: list(v) if isinstance(v, list) else v for k, v in SIZE_DEFAULTS[size].items()}
    if method == "full":
        out["learning_rate"] = FULL_LR[size]
    if task is not None:
        rows = TASK_DEFAULTS.get(task, {})
        out.update(rows.get(size, rows.get("*", {})) if size != "tiny" else rows.get("tiny", {}))
    return out


def model_size(model: str) -> Size:
    """"tiny", "small", "1b", "3b" or "8b": the row of `SIZE_DEFAULTS` a model gets.

    The random offline models (`backends.models.TINY_MODELS`) are "tiny". Any other model is sized by its
    parameter count: from its config.json when that is on this machine (a packaged model's converted
    folder, a local folder or the Hub cache; nothing is downloaded), else from a size in its name ("-1B-",
    "-3B-", "Qwen2.5-7B", "-135M-"). A model with neither gets the 1B defaults.
    """
    if is_tiny(model):
        return "tiny"
    params = parameter_count(resolve_model(model) if is_packaged(model) else model)
    if params is None:
        found = _NAME_SIZE.findall(model.rstrip("/").rsplit("/", 1)[-1])
        params = float(found[-1][0]) * (1e9 if found[-1][1] in "bB" else 1e6) if found else None
    if params is None:
        return "1b"
    return next((size for size, bound in _SIZE_BOUNDS if params < bound), "8b")  # type: ignore[return-value]


@lru_cache(maxsize=32)
def parameter_count(model: str) -> int | None:
    """Parameters of `model` counted from its local config.json (built on the meta device: no memory, no
    weights), or None where no config is available offline or the architecture is not a causal LM."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(model, local_files_only=True)
        with torch.device("meta"):
            net = AutoModelForCausalLM.from_config(config)
    except Exception:  # not local, not a causal LM, a broken config: fall back to the name
        return None
    return sum(p.numel() for p in net.parameters())
