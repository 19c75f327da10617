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
def predict(
    model: torch.nn.Module, X: torch.Tensor, chunk: int = 8192, tasks: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits for X in chunks, in eval mode, float32 (``[Q, M]``, or ``[K, Q, M]`` for a pack);
    ``tasks [Q]`` (long, -1 unknown) goes to routers with a task prior."""
    was_training = model.training
    model.eval()

    def part(i: int) -> torch.Tensor:
        t = tasks[i : i + chunk] if tasks is not None else None
        return model(X[i : i + chunk], t).float() if t is not None else model(X[i : i + chunk]).float()

    out = torch.cat([part(i) for i in range(0, X.shape[0], chunk)], dim=-2)
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


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's tensors are (a fitted model has buffers only)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def split_logits(model: torch.nn.Module, data: RouterData, split: str) -> torch.Tensor:
    """``model``'s logits for one split's questions (with their tasks), on the CPU."""
    device = model_device(model)
    tasks = data.split_tasks(split)
    return predict(
        model,
        torch.from_numpy(data.split(split)[0].copy()).to(device),
        tasks=torch.from_numpy(tasks).long().to(device) if tasks is not None else None,
    ).cpu()


def val_logits(model: torch.nn.Module, data: RouterData) -> torch.Tensor:
    """``model``'s logits for ``data``'s val questions, on the CPU (what offsets are tuned on)."""
    return split_logits(model, data, "val")


def split_metrics(model: torch.nn.Module, data: RouterData, split: str) -> dict[str, float]:
    """Full metrics of a trained model on one split, with that split's baselines."""
    _, y, mask = data.split(split)
    _, y_train, m_train = data.split("train")
    return {
        **M.evaluate(split_logits(model, data, split), torch.from_numpy(y), torch.from_numpy(mask)),
        **M.baselines(y_train, m_train, y, mask),
    }
