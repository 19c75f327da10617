"""Reference routers: single best model, kNN over query embeddings, oracle; the routing table."""

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


def routing_table(router_scores: torch.Tensor, data: RouterData, split: str = "test") -> list[dict]:
    """Rows (name, route_acc, correctness_acc) for the router and the reference routers.

    ``router_scores`` are the router's logits for the split. Correctness accuracy thresholds
    logits at 0 and kNN scores (probabilities) at 0.5; single best and oracle predict no pairs.
    """
    _, y, m = data.split(split)
    _, y_tr, m_tr = data.split("train")
    k = tune_knn(data)
    knn = knn_scores(data, split, k)
    single = M.single_best_scores(y_tr, m_tr, y.shape[0])
    return [
        {
            "router": "best router (this search)",
            "route_acc": M.route_acc(router_scores, y, m),
            "correctness_acc": M.correctness_acc(router_scores, y, m),
        },
        {
            "router": "single best model (on train)",
            "route_acc": M.route_acc(single, y, m),
            "correctness_acc": None,
        },
        {
            "router": f"kNN, cosine, k={k} (tuned on val)",
            "route_acc": M.route_acc(knn, y, m),
            "correctness_acc": M.correctness_acc(knn - 0.5, y, m),
        },
        {
            "router": "oracle (any model correct)",
            "route_acc": M.oracle_route_acc(y, m),
            "correctness_acc": None,
        },
    ]


def format_table(rows: list[dict], split: str = "test") -> str:
    width = max(len(r["router"]) for r in rows)
    lines = [f"{'router (' + split + ' split)':<{width}}  routing acc  correctness acc"]
    for r in rows:
        corr = f"{r['correctness_acc']:.4f}" if r["correctness_acc"] is not None else "-"
        lines.append(f"{r['router']:<{width}}  {r['route_acc']:>11.4f}  {corr:>15}")
    return "\n".join(lines)
