"""Inference: a trained router's logits for queries, in chunks and in eval mode. Used by the
trainer (each epoch's validation), the offsets tuned on val, the routing table, ensemble
selection and ``Router``; imports nothing of training."""

from __future__ import annotations

import torch

from search import metrics as M
from search.data import RouterData


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Logits for X in chunks, in eval mode, float32 (``[Q, M]``, or ``[K, Q, M]`` for a pack)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(X[i : i + chunk]).float() for i in range(0, X.shape[0], chunk)], dim=-2)
    model.train(was_training)
    return out


def val_logits(model: torch.nn.Module, data: RouterData) -> torch.Tensor:
    """``model``'s logits for ``data``'s val questions, on the CPU (what offsets are tuned on)."""
    device = next(iter(model.parameters())).device
    return predict(model, torch.from_numpy(data.split("val")[0].copy()).to(device)).cpu()


def split_metrics(model: torch.nn.Module, data: RouterData, split: str) -> dict[str, float]:
    """Full metrics of a trained model on one split, with that split's baselines."""
    device = next(model.parameters()).device
    X, y, mask = data.split(split)
    _, y_train, m_train = data.split("train")
    on_device = [torch.from_numpy(a).to(device) for a in (X, y, mask)]
    return {
        **M.evaluate(predict(model, on_device[0]), on_device[1], on_device[2]),
        **M.baselines(y_train, m_train, y, mask),
    }
