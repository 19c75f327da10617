"""One-file checkpoints of trained routers: config, dimensions, model names, metadata, weights."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import IO, Any

import torch

from router_models.base_model import BaseModel
from router_models.io import atomic_write_bytes
from router_models.model_factory import ConfigError, create_model

FORMAT_VERSION = 1


def router_config(model: BaseModel, train_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config.json dict (pipeline_config form) that rebuilds ``model``."""
    pipeline: dict[str, Any] = {
        "model_type": model.model_type,
        "model_config": model.model_config(),
    }
    if train_config:
        pipeline["train_config"] = dict(train_config)
    return {"pipeline_config": pipeline}


def save_router(
    model: BaseModel,
    path: str | os.PathLike[str],
    *,
    model_names: Sequence[str] | None = None,
    train_config: dict[str, Any] | None = None,
    routing: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
    costs: Sequence[float] | None = None,
    **metadata: Any,
) -> None:
    """Save a trained router to one file, atomically.

    Args:
        model: A registered BaseModel.
        path: Destination file (parent folders are made).
        model_names: The LLM of each output, in order, when known.
        train_config: Training settings to store beside the model config.
        routing: How the router routes: ``offsets`` (one per LLM, added to the predicted
            correctness; see :func:`router_models.route`) and how they were chosen.
        encoder: How its inputs are made: a JSON-like record of the encoder and template that
            embedded its training data (the search records it), or None when the embeddings
            came from an encoder nobody recorded.
        costs: Each LLM's mean cost per query on its training data, when known (so it can
            route at another willingness to pay).
        **metadata: JSON-like extras (metrics, data source, ...), returned by ``load_router``.
    """
    if model_names is not None and len(model_names) != model.output_dim:
        raise ValueError(f"model_names has {len(model_names)} names but the model scores {model.output_dim}")
    offsets = (routing or {}).get("offsets")
    if offsets is not None and len(offsets) != model.output_dim:
        raise ValueError(
            f"routing offsets have {len(offsets)} values but the model scores {model.output_dim}"
        )
    if costs is not None and len(costs) != model.output_dim:
        raise ValueError(f"costs has {len(costs)} values but the model scores {model.output_dim}")
    payload = {
        "format_version": FORMAT_VERSION,
        "config": router_config(model, train_config),
        "embedding_dim": model.input_dim,
        "num_models": model.output_dim,
        "model_names": list(model_names) if model_names is not None else None,
        "metadata": metadata,
        "routing": dict(routing or {}),
        "encoder": dict(encoder) if encoder is not None else None,
        "costs": [float(c) for c in costs] if costs is not None else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def _unreadable(path: object) -> ConfigError:
    # torch's own message runs to several lines of advice, some of it unsafe to follow (load
    # with weights_only=False); --debug shows it.
    return ConfigError(
        f"{path}: not a readable router checkpoint (a router is a file that save_router wrote, "
        "e.g. a run's best_router.pt)"
    )


def _read_payload(path: str | os.PathLike[str] | IO[bytes], map_location: Any) -> dict[str, Any]:
    """The checkpoint's dict, with every field a router needs checked: one line for each way a
    file can be damaged or hand-made wrong."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a folder; give a router file (.pt)") from exc
    except Exception as exc:  # torch raises many types for corrupt files
        raise _unreadable(path) from exc
    if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
        raise ConfigError(f"{path}: not a router checkpoint (no 'config' / 'state_dict')")
    version = payload.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ConfigError(
            f"{path}: router format {version!r}; this release reads formats 1 to {FORMAT_VERSION} "
            "(a file written by a newer release of router-search: upgrade to read it)"
        )
    for key in ("embedding_dim", "num_models"):
        v = payload.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{path}: {key} is {v!r}; a router checkpoint has a positive integer there")
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ConfigError(f"{path}: state_dict is not a mapping of names to tensors")
    names = payload.get("model_names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != payload["num_models"]
        or not all(isinstance(n, str) for n in names)
        or len(set(names)) != len(names)
    ):
        raise ConfigError(
            f"{path}: model_names must be {payload['num_models']} distinct names (one per LLM), "
            f"got {_short(names)}"
        )
    routing = payload.get("routing") or {}
    if not isinstance(routing, dict):
        raise ConfigError(f"{path}: routing is {type(routing).__name__}, not a mapping")
    offsets = routing.get("offsets")
    if offsets is not None and (
        not isinstance(offsets, (list, tuple))
        or len(offsets) != payload["num_models"]
        or not all(_finite_number(v) for v in offsets)
    ):
        raise ConfigError(
            f"{path}: routing offsets must be {payload['num_models']} finite numbers (one per LLM), "
            f"got {_short(offsets)}"
        )
    if not isinstance(payload.get("metadata") or {}, dict):
        raise ConfigError(f"{path}: metadata is not a mapping")
    if payload.get("encoder") is not None and not isinstance(payload["encoder"], dict):
        raise ConfigError(f"{path}: encoder is {type(payload['encoder']).__name__}, not a mapping")
    costs = payload.get("costs")
    if costs is not None and (
        not isinstance(costs, list)
        or len(costs) != payload["num_models"]
        or not all(_finite_number(c) and c >= 0 for c in costs)
    ):
        raise ConfigError(f"{path}: costs must be {payload['num_models']} numbers >= 0, got {_short(costs)}")
    return payload


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _build(payload: dict[str, Any], path: object) -> BaseModel:
    """The model the payload's config describes, checked against its weights before anything is
    allocated: a config that asks for other shapes (or a billion parameters) than the file holds
    is one line, not a 4 GB allocation."""
    try:
        with torch.device("meta"):
            shapes = create_model(payload["config"], payload["embedding_dim"], payload["num_models"])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: config: {exc}") from exc
    expected = {k: tuple(v.shape) for k, v in shapes.state_dict().items()}
    state = payload["state_dict"]
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        what = (
            f"lacks {missing[0]!r}, which its config makes"
            if missing
            else f"has {extra[0]!r}, which its config does not make"
        )
        raise ConfigError(f"{path}: its weights do not fit its config (the state_dict {what})")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ConfigError(
                f"{path}: its weights do not fit its config ({key} is {list(state[key].shape)} in the "
                f"state_dict but {list(shape)} in the model its config makes)"
            )
    model = create_model(payload["config"], payload["embedding_dim"], payload["num_models"])
    model.load_state_dict(state)
    return model


def load_router(
    path: str | os.PathLike[str] | IO[bytes], map_location: str | torch.device = "cpu"
) -> tuple[BaseModel, dict[str, Any]]:
    """Rebuild a router saved by :func:`save_router` (a path, or a binary file object), in eval mode.

    Returns:
        ``(model, info)`` where info holds ``config``, ``embedding_dim``, ``num_models``,
        ``model_names``, ``metadata``, ``routing``, ``offsets`` (the routing offsets, one per
        LLM: zeros when none were saved, which is the plain argmax), ``encoder`` (how its inputs
        are made; None: by an encoder nobody recorded) and ``costs`` (mean cost per LLM, or None).

    Raises:
        ConfigError: If the file is missing, not a router checkpoint, truncated, or its fields
            do not fit one another (weights of other shapes than its config makes, offsets or
            names of another length); checked before the model is allocated.
    """
    payload = _read_payload(path, map_location)
    model = _build(payload, path)
    model.eval()
    info = {
        k: payload.get(k)
        for k in ("config", "embedding_dim", "num_models", "model_names", "encoder", "costs")
    }
    info["metadata"] = payload.get("metadata") or {}
    routing = payload.get("routing") or {}
    info["routing"] = routing
    info["offsets"] = [float(v) for v in routing.get("offsets") or [0.0] * model.output_dim]
    return model, info


def set_routing(path: str | os.PathLike[str], routing: Mapping[str, Any]) -> None:
    """Replace the routing block (offsets and how they were chosen) of a saved router, atomically.

    Raises:
        ConfigError: If the file is not a router checkpoint, or the offsets do not fit it.
    """
    payload = _read_payload(path, "cpu")
    offsets = routing.get("offsets")
    if offsets is not None and len(offsets) != payload.get("num_models"):
        raise ConfigError(
            f"routing offsets have {len(offsets)} values but {path} scores {payload.get('num_models')}"
        )
    payload["routing"] = dict(routing)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
