"""One-file checkpoints of trained routers: config, dimensions, model names, metadata, weights."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch

from router_models.base_model import BaseModel
from router_models.model_factory import ConfigError, create_model

FORMAT_VERSION = 1


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and rename: a crash leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        **metadata: JSON-like extras (metrics, data source, ...), returned by ``load_router``.
    """
    if model_names is not None and len(model_names) != model.output_dim:
        raise ValueError(f"model_names has {len(model_names)} names but the model scores {model.output_dim}")
    offsets = (routing or {}).get("offsets")
    if offsets is not None and len(offsets) != model.output_dim:
        raise ValueError(
            f"routing offsets have {len(offsets)} values but the model scores {model.output_dim}"
        )
    payload = {
        "format_version": FORMAT_VERSION,
        "config": router_config(model, train_config),
        "embedding_dim": model.input_dim,
        "num_models": model.output_dim,
        "model_names": list(model_names) if model_names is not None else None,
        "metadata": metadata,
        "routing": dict(routing or {}),
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


def load_router(
    path: str | os.PathLike[str] | IO[bytes], map_location: str | torch.device = "cpu"
) -> tuple[BaseModel, dict[str, Any]]:
    """Rebuild a router saved by :func:`save_router` (a path, or a binary file object), in eval mode.

    Returns:
        ``(model, info)`` where info holds ``config``, ``embedding_dim``, ``num_models``,
        ``model_names``, ``metadata``, ``routing`` and ``offsets`` (the routing offsets, one per
        LLM: zeros when none were saved, which is the plain argmax).

    Raises:
        ConfigError: If the file is missing, not a router checkpoint, or truncated.
    """
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except Exception as exc:  # torch raises many types for corrupt files
        raise _unreadable(path) from exc
    if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
        raise ConfigError(f"{path}: not a router checkpoint (no 'config' / 'state_dict')")
    model = create_model(payload["config"], payload["embedding_dim"], payload["num_models"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    info = {k: payload.get(k) for k in ("config", "embedding_dim", "num_models", "model_names")}
    info["metadata"] = payload.get("metadata") or {}
    routing = payload.get("routing") or {}
    info["routing"] = routing
    info["offsets"] = list(routing.get("offsets") or [0.0] * model.output_dim)
    return model, info


def set_routing(path: str | os.PathLike[str], routing: Mapping[str, Any]) -> None:
    """Replace the routing block (offsets and how they were chosen) of a saved router, atomically.

    Raises:
        ConfigError: If the file is not a router checkpoint, or the offsets do not fit it.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _unreadable(path) from exc
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ConfigError(f"{path}: not a router checkpoint (no 'state_dict')")
    offsets = routing.get("offsets")
    if offsets is not None and len(offsets) != payload.get("num_models"):
        raise ConfigError(
            f"routing offsets have {len(offsets)} values but {path} scores {payload.get('num_models')}"
        )
    payload["routing"] = dict(routing)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
