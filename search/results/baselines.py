"""The kNN reference router: each LLM's mean correctness over the k most similar train questions."""

from __future__ import annotations

import numpy as np
import torch

from search import metrics as M
from search.data import RouterData

K_GRID = (5, 10, 20, 50, 100, 200, 400)


@torch.no_grad()
def knn_scores(data: RouterData, split: str, k: int, chunk: int = 256) -> torch.Tensor:
    """Per-model scores for a split: each model's mean correctness over the k most similar
    (cosine) train questions where that model was observed (0.5 where it never was)."""
    Xtr, Ytr, Mtr = (torch.from_numpy(np.ascontiguousarray(a)) for a in data.split("train"))
    Xq = torch.from_numpy(np.ascontiguousarray(data.split(split)[0]))
    Xtr = torch.nn.functional.normalize(Xtr, dim=1)
    Xq = torch.nn.functional.normalize(Xq, dim=1)
    k = min(k, Xtr.shape[0])
    Yf, Mf = Ytr * Mtr, Mtr.float()
    out = []
    for i in range(0, Xq.shape[0], chunk):
        idx = (Xq[i : i + chunk] @ Xtr.T).topk(k, dim=1).indices
        hits, seen = Yf[idx].sum(1), Mf[idx].sum(1)
        out.append(torch.where(seen > 0, hits / seen.clamp_min(1.0), torch.full_like(hits, 0.5)))
    return torch.cat(out)


def tune_knn(data: RouterData, grid: tuple[int, ...] = K_GRID) -> int:
    """The k with the best validation routing accuracy (the smallest on ties)."""
    _, y, m = data.split("val")
    best_k, best = grid[0], -1.0
    for k in grid:
        acc = M.route_acc(knn_scores(data, "val", k), y, m)
        if acc > best:
            best_k, best = k, acc
    return best_k
