"""The routing offsets a router is saved with, tuned on val: a switching margin on the single
best LLM (``margin_routing``), or a willingness to pay that meets a cost budget
(``budget_routing``). ``router_models.route`` applies them wherever the router routes.

With costs, either block also records the val cost curve (``cost_curve``: each willingness to
pay and the mean cost per query it spent on val), so that a router in use can meet a budget it
was not exported for (``Router.lambda_for_budget``) by the same rule as ``budget_routing``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from search import metrics as M
from search.data import RouterData


def margin_routing(logits_val: torch.Tensor, data: RouterData) -> dict[str, Any]:
    """The routing block saved with a router: offsets, and how they were chosen on val.

    Route to the single best LLM on train unless another LLM's predicted correctness beats it by
    more than a margin; the margin is the one that routes best on val (plain argmax on ties).
    """
    _, y, m = data.split("val")
    anchor = data.single_best()
    offsets, margin, acc = M.tune_margin(logits_val, y, m, anchor)
    block: dict[str, Any] = {
        "offsets": offsets,
        "rule": "margin on the single best LLM on train, tuned on val",
        "anchor": anchor,
        "anchor_name": data.model_names[anchor],
        "margin": margin,
        "val_route_acc": acc,
        "val_route_acc_plain": M.route_acc(logits_val, y, m),
    }
    return _with_cost_curve(block, logits_val, data)


def plain_routing(logits_val: torch.Tensor, data: RouterData, rule: str = "plain argmax") -> dict[str, Any]:
    """The routing block of a router that routes plainly (zero offsets; a baseline), with its
    val routing and, with costs, its val cost curve (so a budget can be met later)."""
    _, y, m = data.split("val")
    block: dict[str, Any] = {
        "offsets": [0.0] * data.num_models,
        "rule": rule,
        "val_route_acc": M.route_acc(logits_val, y, m),
    }
    return _with_cost_curve(block, logits_val, data)


def _with_cost_curve(block: dict[str, Any], logits_val: torch.Tensor, data: RouterData) -> dict[str, Any]:
    """``block`` with the val cost curve (each willingness to pay and its mean cost per query)
    when the data has costs, so a budget can be met later."""
    if data.has_costs:
        lambdas, _, costs = _val_cost_curve(logits_val, data)
        block["cost_curve"] = {"lambda": lambdas, "val_cost": costs.tolist()}
    return block


def _val_cost_curve(logits_val: torch.Tensor, data: RouterData) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Willingness-to-pay values and the val routing accuracy and mean cost at each."""
    _, y, m = data.split("val")
    mean = torch.from_numpy(data.mean_cost())
    lambdas = M.lambda_grid(mean)
    accs, costs = M.cost_curve(
        logits_val,
        torch.from_numpy(y),
        torch.from_numpy(m),
        torch.from_numpy(data.split_cost("val")),
        mean,
        lambdas,
    )
    return lambdas, accs, costs


def budget_routing(logits_val: torch.Tensor, data: RouterData, budget: float) -> dict[str, Any]:
    """The routing block for a budget: the smallest willingness to pay ``lambda`` whose mean cost
    per query on val is at most ``budget`` (the cheapest routing when none is)."""
    lambdas, accs, costs = _val_cost_curve(logits_val, data)
    lam, cost = M.lambda_for_budget(costs, lambdas, budget)
    i = lambdas.index(lam)
    return {
        "offsets": (-lam * torch.from_numpy(data.mean_cost())).tolist(),
        "rule": "cost: predicted correctness - lambda x mean cost, lambda meeting the budget on val",
        "lambda": lam,
        "budget": budget,
        "val_cost": cost,
        "val_route_acc": float(accs[i]),
        "met": bool(cost <= budget),
        "cost_curve": {"lambda": lambdas, "val_cost": costs.tolist()},
    }
