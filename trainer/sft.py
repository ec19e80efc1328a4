"""LoRA (or QLoRA, or full) supervised fine-tuning with TRL's `SFTTrainer`.

    from trainer.sft import train
    from trainer.config import TrainConfig
    summary = train(TrainConfig(task="fin_sentiment", model="tiny", train=["train.jsonl"], out="runs/adapter"))
    summary = train(config, records=my_records)          # records passed directly (demo, run.py)

Writes to `config.out`: the adapter in standard PEFT format (or the full model with `method="full"`),
the tokenizer, `training_summary.json` and `loss_curve.png`; `merged/` with `merge=True`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.models import default_device, load_model, load_tokenizer, resolve_model
from core.errors import UserError, fail
from core.inputs import load_inputs
from core.io import write_json_atomic
from core.records import Record
from core.task_spec import Task
from core.tasks import load_task
from trainer.config import ALL_LINEAR, TrainConfig
from trainer.formatting import to_examples, tokenize
from trainer.lengths import fit_lengths
from trainer.lm_head import compact_lm_head
from trainer.memory import CPU_SHARE, free_bytes
from trainer.plan import fit
from trainer.report import data_counts, peak_memory_mb, plot_loss_curve

SUMMARY_FILE = "training_summary.json"
# A record's example, or its candidates longest first (the first that fits max_length is trained on).
FormatExample = Callable[[Record], dict[str, Any] | list[dict[str, Any]]]
LOSS_CURVE_FILE = "loss_curve.png"


def split_val(records: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out `fraction` of the records, chosen by a seeded hash of the id (stable, order-free)."""
    if fraction <= 0 or len(records) < 2:
        return list(records), []
    def key(r: Record) -> str:
        return hashlib.sha256(f"{seed}\x1fval\x1f{r.id}".encode()).hexdigest()
    ranked = sorted(records, key=key)
    n_val = min(len(records) - 1, max(1, round(len(records) * fraction)))
    held = {id(r) for r in ranked[:n_val]}
    return [r for r in records if id(r) not in held], [r for r in records if id(r) in held]


def check_config(cfg: TrainConfig) -> None:
    if not 0 <= cfg.val_fraction < 1:
        fail(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    for name in ("batch_size", "grad_accum", "max_length", "lora_r"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if cfg.method == "full" and cfg.merge:
        fail("--merge only applies to --method lora/qlora (full fine-tuning already writes a whole model)")
    if cfg.push_to_hub and not os.environ.get("HF_TOKEN"):
        fail("--push-to-hub needs a Hugging Face token in the HF_TOKEN environment variable")


def _load_for_training(cfg: TrainConfig, device: str) -> tuple[Any, Any]:
    if cfg.method != "qlora":
        return load_model(cfg.model, device=device)
    import torch

    if not torch.cuda.is_available():
        fail("--method qlora needs a CUDA GPU (use --method lora on CPU)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        fail("--method qlora needs bitsandbytes: pip install bitsandbytes")
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(cfg.model), quantization_config=quant,
                                                 dtype=torch.bfloat16, device_map={"": 0})
    return prepare_model_for_kbit_training(model), load_tokenizer(cfg.model)


def build_trainer(cfg: TrainConfig, task: Task, train_records: list[Record], val_records: list[Record],
                  callbacks: list | None = None, format_example: FormatExample | None = None) -> Any:
    """An `SFTTrainer` ready to `.train()`: the model (LoRA-wrapped unless full), datasets tokenised and masked.

    `format_example` turns a record into TRL's prompt-completion form; default: the task's own prompt.
    With `cfg.memory_plan`, the device batch and checkpointing are fitted to the free memory once the
    examples' token counts are known (`plan_memory`); the trainer carries the fitted config as
    `trainer.fitted_config` and the decision as `trainer.memory_plan`.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    device = cfg.device or default_device()
    tokenizer = load_tokenizer(cfg.model)

    def examples(records: list[Record], split: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        # Never train on a truncated answer: every example is length-checked (trainer/lengths.py).
        made = [format_example(r) for r in records] if format_example else to_examples(records, task, cfg.seed)
        return fit_lengths(tokenizer, made, [record_name(r) for r in records], cfg.max_length, split=split)

    train_examples, train_lengths = examples(train_records, "train")
    if not train_examples:
        fail(f"no training example fits --max-length {cfg.max_length} (each would have its answer truncated)")
    val_examples, val_lengths = examples(val_records, "eval") if val_records else ([], None)
    longest = max(train_lengths["max_tokens"], (val_lengths or {}).get("max_tokens", 0))
    # Tokenised here, not by TRL: the loss mask is the answer + its end-of-turn token, found by offsets
    # (formatting.tokenize), whatever the template renders after it; TRL builds labels from the mask.
    train_rows = [tokenize(tokenizer, e) for e in train_examples]
    val_rows = [tokenize(tokenizer, e) for e in val_examples]
    answer = max(sum(row["completion_mask"]) for row in train_rows + val_rows)  # the LM head's rows per example
    cfg, memory_plan = plan_memory(cfg, longest=longest, answer=answer)
    set_seed(cfg.seed)  # before the model and the LoRA init, which SFTTrainer does before its own seeding
    model, tokenizer = _load_for_training(cfg, device)
    peft_config = None
    if cfg.method in {"lora", "qlora"}:
        peft_config = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, task_type="CAUSAL_LM",
            target_modules=ALL_LINEAR if list(cfg.target_modules) == [ALL_LINEAR] else list(cfg.target_modules),
            modules_to_save=list(cfg.modules_to_save) or None,
            # Tied input/output embeddings (Llama 3.2, tiny-llama3) stay one trained matrix, saved once.
            ensure_weight_tying=bool(getattr(model.config, "tie_word_embeddings", False) and cfg.modules_to_save),
        )
    on_gpu = device.startswith("cuda")
    args = SFTConfig(
        output_dir=str(Path(cfg.out) / "checkpoints"), save_strategy="no", report_to="none",
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, lr_scheduler_type="cosine", max_length=cfg.max_length,
        packing=cfg.packing, completion_only_loss=True,
        # Batches of similar lengths waste less compute on padding (seeded, so still deterministic).
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.packing else "random",
        seed=cfg.seed, data_seed=cfg.seed,
        logging_steps=cfg.logging_steps, eval_strategy="epoch" if val_examples else "no",
        use_cpu=not on_gpu, bf16=on_gpu and torch.cuda.is_bf16_supported(),
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0,
        gradient_checkpointing=cfg.method == "qlora" or bool(cfg.gradient_checkpointing), disable_tqdm=False,
    )
    train_ds = Dataset.from_list(train_rows)
    val_ds = Dataset.from_list(val_rows) if val_rows else None
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks or [])
    # The loss's LM head on the label positions only (TRL does that on CUDA only): trainer/lm_head.py.
    compact_lm_head(trainer.model)
    trainer.length_check = {"train": train_lengths, "eval": val_lengths}
    trainer.fitted_config, trainer.memory_plan = cfg, memory_plan
    return trainer


def record_name(record: Record) -> str:
    """How warnings name a record: its row id where the caller gave one (run.py), else its record id."""
    row = record.provenance.get("row_id")
    return f"row {row}" if row else f"record {record.id}"


def train(config: TrainConfig, records: list[Record] | None = None, task: Task | None = None, *,
          val_records: list[Record] | None = None, format_example: FormatExample | None = None) -> dict[str, Any]:
    """Train and save; returns the summary also written to `<out>/training_summary.json`.

    Args:
        config: settings; model-dependent `None`s take their defaults (`TrainConfig.resolved`).
        records: training records; when None they are read from `config.train`.
        task: an already loaded task (e.g. with its label set taken from the data, as `run.py`
            does); when None, `config.task` is loaded by name.
        val_records: a held-out set chosen by the caller (e.g. a cross-validation fold); when None,
            `config.val_fraction` of the records is held out by a seeded hash.
        format_example: record -> {"prompt": messages, "completion": messages}, for callers whose
            prompts hold more than the record (run.py's retrieved neighbours); default: the task's prompt.
            It may return candidates, longest first: the first within max_length is trained on
            (trainer/lengths.py); a record none of whose candidates fits is skipped with a warning.
    """
    from trainer.callbacks import TimeBudget

    cfg = config.resolved()
    check_config(cfg)
    task = task or load_task(cfg.task)
    if records is None:
        if not cfg.train:
            fail("no training data: pass --train FILE [FILE ...]")
        records = load_inputs(cfg.train, task)
    records = [r for r in records if task.label_name in r.labels]
    if not records:
        fail(f"no training records with a '{task.label_name}' label")
    if val_records is None:
        train_records, val_records = split_val(records, cfg.val_fraction, cfg.seed)
    else:
        train_records = records

    start = time.perf_counter()
    budget = TimeBudget(cfg.time_budget_s, start) if cfg.time_budget_s else None
    trainer = build_trainer(cfg, task, train_records, val_records, [budget] if budget else None, format_example)
    cfg, memory_plan = trainer.fitted_config, trainer.memory_plan
    result = trainer.train()
    train_wall = time.perf_counter() - start
    val_loss = None
    if trainer.eval_dataset is not None:  # the last epoch's evaluation measured the final weights unless stopped
        last_eval = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
        fresh = last_eval is not None and last_eval.get("step") == trainer.state.global_step
        val_loss = last_eval["eval_loss"] if fresh else trainer.evaluate()["eval_loss"]

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # TRL's output_dir stays empty (save_strategy="no"): not an artifact
        (out / "checkpoints").rmdir()
    model = trainer.model
    model.save_pretrained(out)
    trainer.processing_class.save_pretrained(out)
    if cfg.merge:
        model.merge_and_unload().save_pretrained(out / "merged")
        trainer.processing_class.save_pretrained(out / "merged")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    state = trainer.state
    summary = {
        "task": task.name, "model": cfg.model, "method": cfg.method,
        "steps": state.global_step, "epochs_done": round(state.epoch or 0.0, 3),
        "train_loss": result.training_loss, "final_train_loss": _last(state.log_history, "loss"),
        "val_loss": val_loss, "wall_clock_s": round(time.perf_counter() - start, 2),
        "train_s": round(train_wall, 2), "tokens_seen": state.num_input_tokens_seen,
        "tokens_per_s": round(state.num_input_tokens_seen / max(result.metrics["train_runtime"], 1e-9), 1),
        "peak_memory_mb": peak_memory_mb(), "trainable_params": trainable, "total_params": total,
        "trainable_fraction": round(trainable / total, 6),
        "data": {"train": data_counts(train_records), "val": data_counts(val_records)},
        "stopped_early": bool(budget and budget.stopped), "time_budget_s": cfg.time_budget_s,
        "memory_plan": memory_plan, "length_check": trainer.length_check,
        "adapter_dir": str(out), "merged_dir": str(out / "merged") if cfg.merge else None,
        "log_history": state.log_history, "config": cfg.as_dict(),
    }
    plot_loss_curve(state.log_history, out / LOSS_CURVE_FILE, title=f"{task.name} · {cfg.model} · {cfg.method}")
    write_json_atomic(out / SUMMARY_FILE, summary)
    if cfg.push_to_hub:
        _push(model, trainer.processing_class, cfg.push_to_hub)
    return summary


def plan_memory(cfg: TrainConfig, longest: int | None = None,
                answer: int | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """`cfg` fitted to the device's free memory by `trainer.plan` (smaller device batch with more accumulation,
    then gradient checkpointing), and what was decided (the summary's `memory_plan`). `longest`: the
    longest example's tokens (activations are counted at it, not at max_length); `answer`: the most loss
    positions of one example (the LM head's rows)."""
    device = cfg.device or default_device()
    if not cfg.memory_plan:
        return cfg, {"used": False, "reason": "--no-memory-plan"}
    try:
        free = free_bytes(device)
        fitted, decision = fit(cfg, device, free, longest=longest, answer=answer)
    except UserError as exc:  # no config of the model on this machine: train as configured
        return cfg, {"used": False, "reason": str(exc)}
    if decision.changed:
        print(f"memory plan: {cfg.model} needs about {decision.required / 2**30:.1f} GiB as configured, "
              f"{free / 2**30:.1f} GiB {_allowed(device)}: {decision.changed}", file=sys.stderr, flush=True)
    if not decision.fits:
        print(f"warning: memory plan: {cfg.model} needs about {decision.required / 2**30:.1f} GiB even at batch "
              f"{decision.batch_size} with checkpointing; {free / 2**30:.1f} GiB {_allowed(device)}; training anyway",
              file=sys.stderr, flush=True)
    return fitted, {"used": True, **decision.as_dict()}


def _allowed(device: str) -> str:
    return "free on cuda" if device.startswith("cuda") else f"allowed on {device} ({CPU_SHARE:.0%} of the available RAM)"


def _last(history: list[dict], key: str) -> float | None:
    return next((h[key] for h in reversed(history) if key in h), None)


def _push(model: Any, tokenizer: Any, repo: str) -> None:
    token = os.environ["HF_TOKEN"]
    try:
        model.push_to_hub(repo, token=token)
        tokenizer.push_to_hub(repo, token=token)
    except Exception as exc:  # network or permission: the adapter is saved locally either way
        raise UserError(f"--push-to-hub {repo}: {str(exc).splitlines()[0]} (the adapter is saved locally)") from None
