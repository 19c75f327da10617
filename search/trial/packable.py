"""What may share a pack: configs with equal structure and shared training settings (widths
may differ). The packer keys packs by :func:`pack_key`; ``search train`` says which key differs
(:func:`incompatibility`); a run probes each model type with :func:`check_packable`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from router_models import BaseModel, ConfigError, read_pipeline_config
from router_models.packing import NotPackable, PackedRouter, pack_signature
from search.trial.config import meta_model
from search.trial.train_config import PER_MEMBER_TRAIN_KEYS


def pack_key(
    config: Mapping[str, Any], train_config: Mapping[str, Any], embedding_dim: int, num_models: int
) -> tuple[Any, ...]:
    """Configs with equal keys can be trained as one pack (widths may differ).

    Raises:
        ConfigError: On a config that does not build. NotPackable: On a model that cannot pack.
    """
    shared = tuple(
        sorted((k, json.dumps(v)) for k, v in train_config.items() if k not in PER_MEMBER_TRAIN_KEYS)
    )
    model = meta_model(config, embedding_dim, num_models)
    if model.fitted:  # fitted in one step, each its own group: any of one type share a pack
        return (model.model_type, shared, ("fitted",))
    return (model.model_type, shared, pack_signature(model))


def incompatibility(
    configs: Sequence[Mapping[str, Any]],
    train_configs: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    embedding_dim: int,
    num_models: int,
) -> str | None:
    """None when all configs can share a pack, else one line naming the first key that differs."""
    keys = [pack_key(c, t, embedding_dim, num_models) for c, t in zip(configs, train_configs)]
    first = read_pipeline_config(configs[0])
    for i in range(1, len(configs)):
        if keys[i] == keys[0]:
            continue
        other = read_pipeline_config(configs[i])
        where = f"{names[0]} and {names[i]}"
        if first["model_type"] != other["model_type"]:
            return f"{where} differ in model_type ({first['model_type']} vs {other['model_type']})"
        for k, v in train_configs[0].items():
            if k not in PER_MEMBER_TRAIN_KEYS and train_configs[i].get(k) != v:
                return f"{where} differ in train_config.{k} ({v!r} vs {train_configs[i].get(k)!r})"
        a, b = first.get("model_config", {}), other.get("model_config", {})
        for k in sorted(set(a) | set(b)):
            if a.get(k) == b.get(k):
                continue
            # Does this key alone change the structure? Then it is the one that differs.
            swapped = {
                **first,
                "model_config": {**a, k: b[k]} if k in b else {x: y for x, y in a.items() if x != k},
            }
            if pack_key(swapped, train_configs[0], embedding_dim, num_models) != keys[0]:
                return (
                    f"{where} differ in model_config.{k} ({a.get(k)!r} vs {b.get(k)!r}), which "
                    "changes the model's structure; a pack needs one structure"
                )
        return f"{where} differ in the model's structure; a pack needs one structure"
    return None


def check_packable(build: Callable[[], BaseModel]) -> None:
    """Raise ConfigError (one line) unless two models from ``build()`` pack exactly."""
    try:
        PackedRouter([build(), build()])
    except NotPackable as exc:
        raise ConfigError(str(exc)) from exc
