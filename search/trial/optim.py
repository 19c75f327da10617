"""AdamW over packed parameters: every member keeps its own learning rate and weight decay.

torch's AdamW takes one learning rate per parameter group, but a packed parameter holds K
members along dim 0. Each member's slices of the packed parameters get the update
``torch.optim.AdamW`` would give them alone, with the member's own lr and weight decay:
decoupled decay, bias-corrected moments, eps outside the root. On CPU it runs torch's fused
AdamW kernel once per member (one pass over memory); on a GPU the same arithmetic on whole
packed tensors with per-member lr and decay broadcast, so the number of kernel launches does not
grow with K. A weight with zero gradient and zero moments (a padded unit)
stays exactly where it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch


class PackedAdamW:
    """AdamW for parameters shaped ``[K, ...]`` with one lr and weight decay per member.

    Args:
        params: Packed parameters (dim 0 is the member); those without requires_grad are skipped.
        lr: K learning rates, each > 0.
        weight_decay: K decoupled weight decays, each >= 0.
        betas: Moment decay rates, each in [0, 1).
        eps: Added to the root of the second moment, > 0.

    Raises:
        ValueError: On a bad value (shown) or when lr and weight_decay differ in length.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: Sequence[float],
        weight_decay: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if len(lr) != len(weight_decay) or not lr:
            raise ValueError(
                f"need one lr and one weight_decay per member, got {len(lr)} and {len(weight_decay)}"
            )
        if any(not (math.isfinite(v) and v > 0) for v in lr):
            raise ValueError(f"every lr must be > 0, got {list(lr)}")
        if any(not (math.isfinite(v) and v >= 0) for v in weight_decay):
            raise ValueError(f"every weight_decay must be >= 0, got {list(weight_decay)}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.params = [p for p in params if p.requires_grad]
        for p in self.params:
            if p.shape[0] != len(lr):
                raise ValueError(f"a parameter of shape {tuple(p.shape)} does not hold {len(lr)} members")
        self.lr = [float(v) for v in lr]
        self.weight_decay = [float(v) for v in weight_decay]
        self.betas = betas
        self.eps = eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        device = self.params[0].device if self.params else torch.device("cpu")
        self.step_count = torch.zeros((), dtype=torch.float32, device=device)  # for the fused kernel
        self.steps = 0
        self._per_member: tuple[torch.Tensor, torch.Tensor] | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [p for p in self.params if p.grad is not None]
        if not live:
            return
        states = [(m, v) for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq) if p.grad is not None]
        self.steps += 1
        if live[0].device.type != "cpu":
            self._vector_step(live, states)
            return
        self.step_count += 1
        steps = [self.step_count] * len(live)
        for k, (lr, wd) in enumerate(zip(self.lr, self.weight_decay)):
            torch._fused_adamw_(
                [p[k] for p in live],
                [p.grad[k] for p in live],  # type: ignore[index]
                [m[k] for m, _ in states],
                [v[k] for _, v in states],
                [],
                steps,
                lr=lr,
                beta1=self.betas[0],
                beta2=self.betas[1],
                weight_decay=wd,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )

    def _vector_step(
        self, live: list[torch.nn.Parameter], states: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> None:
        # torch's AdamW arithmetic on whole packed tensors, per-member lr and decay broadcast:
        # a fixed number of kernels per parameter whatever K is, and no host-device sync.
        beta1, beta2 = self.betas
        bias1 = 1.0 - beta1**self.steps
        bias2_sqrt = math.sqrt(1.0 - beta2**self.steps)
        if self._per_member is None:  # made once (and after select): a copy to the GPU waits
            lr = torch.tensor(self.lr, device=live[0].device)
            self._per_member = (lr, 1.0 - lr * torch.tensor(self.weight_decay, device=lr.device))
        lr, decay = self._per_member
        grads = [p.grad for p in live]
        exp_avg = [m for m, _ in states]
        exp_avg_sq = [v for _, v in states]
        torch._foreach_lerp_(exp_avg, grads, 1.0 - beta1)  # type: ignore[arg-type]
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1.0 - beta2)  # type: ignore[arg-type]
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_div(exp_avg, denom)
        for p, u in zip(live, update):
            shape = (p.shape[0],) + (1,) * (p.dim() - 1)
            p.mul_(decay.view(shape)).addcmul_(u, lr.view(shape), value=-1.0 / bias1)

    def select(self, idx: torch.Tensor, params: Iterable[torch.nn.Parameter]) -> None:
        """Keep the members at ``idx``: ``params`` are the model's sliced parameters (in the
        order given at construction), the optimizer state is sliced here."""
        self.params = [p for p in params if p.requires_grad]
        keep = idx.tolist()
        self._per_member = None
        self.lr = [self.lr[i] for i in keep]
        self.weight_decay = [self.weight_decay[i] for i in keep]
        idx = idx.to(self.step_count.device)
        self.exp_avg = [m[idx].contiguous() for m in self.exp_avg]
        self.exp_avg_sq = [v[idx].contiguous() for v in self.exp_avg_sq]
