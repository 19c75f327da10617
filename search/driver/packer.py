"""Asking the study for packs: up to K Optuna trials that can be trained as one fused model.

The sampler still draws every trial from the whole space. A pack starts with a leader, asked as
usual. Each follower is asked with the leader's *structural* params enqueued as fixed values
(those that would change the pack key: depth, num_blocks, batch_size, epochs, model_type, ...),
and everything else sampled: the study records every param with its full distribution, so TPE
keeps learning from all trials. Trials a user enqueued come first, in their order; one that does
not fit the pack waits as the leader of the next.
Widths may differ inside a pack: the trainer pads them on a GPU and groups them on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from router_models import ConfigError
from router_models.packing import NotPackable
from search.data import RouterData
from search.data.data_options import ENCODER_PARAM
from search.space import Space
from search.study.store import held_writes
from search.trial.config import complete_config
from search.trial.packable import pack_key
from search.trial.train_config import resolve_train_config


def probe_values(dist: BaseDistribution) -> list[Any]:
    """Values that show whether a param can change the pack key: every choice, or a range's
    ends and middle."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        mid = dist.low + (dist.high - dist.low) // 2 // dist.step * dist.step
        return sorted({dist.low, mid, dist.high})
    if isinstance(dist, FloatDistribution):
        return [dist.low, (dist.low + dist.high) / 2, dist.high]
    return []


class Packer:
    """Forms packs of compatible trials from one study.

    Args:
        study: The run's study.
        space: Turns params into configs.
        pack_size: Most trials per pack, >= 1.
        embedding_dim: The data's embedding width, or each encoder's (a search choosing encoders).
        num_models: The data's number of LLMs.
        data: The run's data, which fills in what a config takes from it (a task prior's tasks,
            a kNN router's references: ``trial.config.complete_config``); None: configs as given.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: Space,
        pack_size: int,
        embedding_dim: int | Mapping[str, int],
        num_models: int,
        data: RouterData | None = None,
    ) -> None:
        if pack_size < 1:
            raise ValueError(f"pack_size must be >= 1, got {pack_size}")
        self.study = study
        self.space = space
        self.pack_size = pack_size
        # the embedding width of each encoder a trial may choose ("" when there is no choice)
        self.widths = dict(embedding_dim) if isinstance(embedding_dim, Mapping) else {"": embedding_dim}
        self.num_models = num_models
        self.data = data
        self.pending: list[optuna.trial.Trial] = []  # asked, waiting to lead a later pack
        self.asking = study  # what next_pack asks through (the sampler's view); all else: study

    def key(self, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The pack key of a trial's params; None for a config that does not build (it trains
        alone and fails with its own error)."""
        config = self.space.trial_config(params)
        encoder = self.space.encoder_of(params)  # one pack, one encoder: its members share inputs
        try:
            if self.data is not None:
                config = complete_config(config, self.data)
            key = pack_key(config, resolve_train_config(config), self.widths[encoder], self.num_models)
        except (ConfigError, NotPackable, ValueError):
            return None
        return (encoder, *key)

    def structural(self, params: dict[str, Any]) -> list[str]:
        """The params that, changed alone, change the pack key of ``params``."""
        base = self.key(params)
        out = []
        for name, dist in self.space.distributions(self.space.model_type_of(params)).items():
            if name not in params:
                continue
            if any(self.key({**params, name: v}) != base for v in probe_values(dist) if v != params[name]):
                out.append(name)
        return out

    def _enqueue(self, params: dict[str, Any]) -> None:
        self.study.enqueue_trial(params, skip_if_exists=False)

    def _ask(self) -> optuna.trial.Trial:
        trial = self.asking.ask()  # an ask takes the oldest waiting trial first
        with held_writes(self.study):  # its params in one append: the trial caches its own
            self.space.suggest(trial)
        return trial

    def _cover_types(self) -> None:
        """In a space over several model types (or encoders), a pack's followers share its
        leader's type (and encoder), so a search has only as many draws of them as packs: the
        first leader of a type, or an encoder, no trial has yet is asked with it (the sampler
        chooses everything else, and every type and encoder later)."""
        if self._waiting():
            return
        # every trial asked so far, not a view's: which types were tried depends on asks only
        trials = self.study.get_trials(deepcopy=False)
        fixed: dict[str, Any] = {}
        for name, choices in (("model_type", self.space.types), (ENCODER_PARAM, self.space.data.encoders)):
            if len(choices) < 2:
                continue
            seen = {t.params.get(name) for t in trials}
            missing = [c for c in choices if c not in seen]
            if missing:
                fixed[name] = missing[0]
        if fixed:
            self._enqueue(fixed)

    def _waiting(self) -> bool:
        # the run's storage keeps its waiting trials' ids: no scan of the study
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def next_pack(
        self, budget: int, study: optuna.Study | None = None
    ) -> tuple[list[optuna.trial.Trial], int]:
        """Up to ``pack_size`` compatible trials, and how many of them were newly asked.

        Args:
            budget: How many new trials may be asked (the rest of num_samples); a trial left
                waiting from an earlier pack is used first and does not count.
            study: A view of the study to ask through (``study/views.py``), or None for the
                study itself.
        """
        self.asking = study or self.study
        asked = 0
        if self.pending:
            leader = self.pending.pop(0)
        elif budget > 0:
            self._cover_types()
            leader, asked = self._ask(), 1
        else:
            return [], 0
        pack = [leader]
        if self.pack_size > 1:
            followers, more = self._followers(leader.params, self.pack_size - 1, budget - asked)
            pack += followers
            asked += more
        return pack, asked

    def refill(
        self, n: int, budget: int, fixed: dict[str, Any] | None = None
    ) -> tuple[list[optuna.trial.Trial], int]:
        """Up to ``n`` new trials for the slots a running pack's members freed, and how many
        were asked. They join that pack as a cohort of their own (``trial/train.py``), so they
        need not share its structure: a leader drawn from the whole space (with ``fixed``, the
        pack's encoder, set), followers sharing the leader's structural params, as in a new
        pack. A trial a user enqueued that does not fit waits to lead a later pack."""
        self.asking = self.study
        if n <= 0 or budget <= 0:
            return [], 0
        if fixed and not self._waiting():
            self._enqueue(fixed)
        leader = self._ask()
        if fixed and any(leader.params.get(k) != v for k, v in fixed.items()):
            self.pending.append(leader)  # a user's trial on another encoder: a pack of its own
            return [], 1
        followers, asked = self._followers(leader.params, n - 1, budget - 1)
        return [leader, *followers], asked + 1

    def _followers(self, leader: dict[str, Any], n: int, budget: int) -> tuple[list[optuna.trial.Trial], int]:
        """Up to ``n`` trials asked with ``leader``'s structural params fixed (everything else
        sampled), within ``budget`` asks."""
        key = self.key(leader)
        out: list[optuna.trial.Trial] = []
        asked = 0
        fixed: dict[str, Any] | None = None  # worked out at the first follower that needs it
        while key is not None and len(out) < n and asked < budget:
            if not self._waiting():
                if fixed is None:
                    fixed = {name: leader[name] for name in self.structural(leader)}
                self._enqueue(fixed)
            trial, asked = self._ask(), asked + 1
            if self.key(trial.params) != key:
                self.pending.append(trial)
                break
            out.append(trial)
        return out, asked
