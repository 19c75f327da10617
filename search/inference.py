"""Inference: a trained router's logits for queries, in chunks and in eval mode. Used by the
trainer (each epoch's validation), the offsets tuned on val, the routing table, ensemble
selection and ``Router``; imports nothing of training."""

from __future__ import annotations

import math
import time

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


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 30, warmup: int = 5) -> float:
    """How long ``model`` takes to score one batch ``x`` on ``x``'s device, in milliseconds:
    the fastest of ``repeats`` calls after ``warmup`` (the fastest, because other work on the
    same cores or chip only ever adds time), in eval mode, the device synchronized per call."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    was_training = model.training
    model.eval()
    for _ in range(warmup):
        model(x)
    sync()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        sync()
        best = min(best, time.perf_counter() - start)
    model.train(was_training)
    return best * 1000.0


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
