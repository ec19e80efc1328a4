"""The loss's LM head on label positions only (trainer/lm_head.py): the same loss, metrics and gradients as
TRL's fused head, which projects every position on a CPU."""

from __future__ import annotations

import pytest
import torch

from trainer.config import TrainConfig
from trainer.sft import build_trainer


@pytest.fixture(scope="module")
def setup(fin_task, fin_records, tmp_path_factory):
    cfg = TrainConfig(task="fin_sentiment", model="tiny", out=str(tmp_path_factory.mktemp("head")), device="cpu",
                      batch_size=8, max_length=192, val_fraction=0.0, max_steps=1).resolved()
    trainer = build_trainer(cfg, fin_task, fin_records[:16], [])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    trainer.model.eval()  # no dropout: both forwards see the same network
    return trainer, batch


def _run(trainer, forward, batch):
    trainer.model.zero_grad()
    out = forward(**batch, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return out, grads


def test_same_loss_metrics_and_gradients_as_trls_head(setup):
    trainer, batch = setup
    base = trainer.model.get_base_model()
    assert base.forward.compact_lm_head
    ours, ours_grads = _run(trainer, trainer.model, batch)
    theirs, their_grads = _run(trainer, base.forward.trl_forward, batch)
    assert torch.allclose(ours.loss, theirs.loss, rtol=0, atol=1e-6)
    for field in ("log_probs", "entropy"):
        assert torch.allclose(getattr(ours, field), getattr(theirs, field), rtol=0, atol=1e-5)
    assert torch.equal(ours.is_top1, theirs.is_top1) and torch.equal(ours.label_mask, theirs.label_mask)
    # The tiny model trains its embeddings and head in full: the head's weight gradient is compared too.
    assert ours_grads.keys() == their_grads.keys() and any("lm_head" in n for n in ours_grads)
    for name, grad in ours_grads.items():
        assert torch.allclose(grad, their_grads[name], rtol=1e-4, atol=1e-6), name


def test_only_label_positions_reach_the_head(setup, monkeypatch):
    from trl.kernels import ChunkedLogProbFunction

    trainer, batch = setup
    rows: list[int] = []
    apply = ChunkedLogProbFunction.apply

    def spy(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(ChunkedLogProbFunction, "apply", spy)
    with torch.no_grad():
        trainer.model(**batch, fused_lm_head=True)
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert rows == [labelled] and labelled < batch["input_ids"].numel() // 10


def test_plain_forward_still_gives_logits(setup):
    trainer, batch = setup
    with torch.no_grad():
        out = trainer.model(input_ids=batch["input_ids"][:2], attention_mask=batch["attention_mask"][:2])
    assert out.logits.shape[:2] == batch["input_ids"][:2].shape
