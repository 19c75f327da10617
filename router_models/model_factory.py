"""The model registry and ``create_model``: a model registers itself, the factory looks it up."""

from __future__ import annotations

import difflib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from router_models.base_model import BaseModel
from router_models.errors import ConfigError

_REGISTRY: dict[str, type[BaseModel]] = {}

M = TypeVar("M", bound=type[BaseModel])


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: make ``cls`` creatable as ``model_type == name``.

    Raises:
        ValueError: If ``name`` is empty or already registered, or the class is no BaseModel.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")

    def decorator(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            raise ValueError(f"register_model({name!r}) needs a BaseModel subclass, got {cls!r}")
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name].__name__}")
        cls.model_type = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (for tests and interactive use)."""
    _REGISTRY.pop(name, None)


def list_models() -> list[str]:
    """The registered model types, sorted."""
    return sorted(_REGISTRY)


def get_model_class(model_type: str) -> type[BaseModel]:
    """The class registered as ``model_type``.

    Raises:
        ConfigError: If unknown; the message lists the registered names.
    """
    if model_type not in _REGISTRY:
        raise ConfigError(f"unknown model_type {model_type!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[model_type]


def model_params(model_type: str) -> list[str]:
    """The ``model_config`` keys ``model_type`` takes: the named parameters of its class's
    ``__init__`` (a model lists every setting it reads there), ``output_dim`` included.

    Raises:
        ConfigError: If ``model_type`` is unknown.
    """
    return [p.name for p in get_model_class(model_type).init_parameters() if p.name != "input_dim"]


def unknown_key_message(key: str, valid: list[str]) -> str:
    """``unknown key 'dropuot' (did you mean 'dropout'?); valid: ...``: one line."""
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; valid: {', '.join(valid)}"


def read_pipeline_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """The ``pipeline_config`` block from a full config, an inner block, or a config.json path.

    Raises:
        ConfigError: If the file is unreadable or the structure is wrong.
    """
    where = "config"
    if isinstance(config, (str, os.PathLike)):
        where = str(config)
        config = _read_json(Path(config))
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(config).__name__}")
    if "pipeline_config" in config:
        inner = config["pipeline_config"]
        where += ": pipeline_config"
    elif "model_type" in config:
        inner = config
    else:
        raise ConfigError(
            f"{where}: no 'pipeline_config' (or 'model_type') key; expected "
            '{"pipeline_config": {"model_type": ..., "model_config": {...}}}'
        )
    if not isinstance(inner, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(inner).__name__}")
    if "model_type" not in inner:
        raise ConfigError(f"{where}: missing 'model_type'; registered: {', '.join(list_models())}")
    model_config = inner.get("model_config", {})
    if not isinstance(model_config, Mapping):
        raise ConfigError(f"{where}: 'model_config' must be an object")
    return dict(inner)


def create_model(
    config: Mapping[str, Any] | str | os.PathLike[str], embedding_dim: int, num_models: int
) -> BaseModel:
    """Build the model a config describes.

    Args:
        config: The config.json dict (``{"pipeline_config": {...}}``), its inner
            ``{"model_type", "model_config"}`` dict, or a path to a config.json file.
        embedding_dim: Query embedding width (the model's input_dim).
        num_models: Number of LLMs; ``model_config.output_dim`` defaults to it and must equal it.

    Raises:
        ConfigError: On a malformed config, an unknown model_type, an output_dim mismatch, or
            a setting the model rejects (the message shows the bad value). Anything else the
            model's constructor raises is a bug, raised as it is.
    """
    pipeline = read_pipeline_config(config)
    cls = get_model_class(pipeline["model_type"])
    model_config = dict(pipeline.get("model_config", {}))
    output_dim = model_config.pop("output_dim", num_models)
    if output_dim != num_models:
        raise ConfigError(
            f"model_config.output_dim is {output_dim!r} but the data has {num_models} models; "
            "remove output_dim or make it equal"
        )
    valid = model_params(pipeline["model_type"])
    if not cls.requires_hidden and "hidden_dims" in valid:
        model_config.setdefault("hidden_dims", [])
    for key in model_config:
        if key not in valid:
            raise ConfigError(f"model_config: {unknown_key_message(key, valid)}")
    # Arguments are checked against the settings first, so that a TypeError the constructor
    # itself raises is what it is, a bug, and not reported as a config mistake.
    settings = inspect.Signature([p.replace(kind=p.KEYWORD_ONLY) for p in cls.init_parameters()])
    needs = settings.parameters.get("hidden_dims")
    if needs is not None and needs.default is inspect.Parameter.empty and "hidden_dims" not in model_config:
        raise ConfigError("model_config: missing 'hidden_dims' (a list of positive integers)")
    try:
        settings.bind(input_dim=embedding_dim, output_dim=output_dim, **model_config)
    except TypeError as exc:
        raise ConfigError(f"model_config for {pipeline['model_type']!r}: {exc}") from exc
    return cls(input_dim=embedding_dim, output_dim=output_dim, **model_config)


def _read_json(path: Path) -> Any:
    """A config.json: UTF-8 JSON, one line for every way it cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a folder; give a config.json file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: not readable ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte at offset {exc.start}); save it as UTF-8") from exc
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deep to be a config") from exc
    except KeyError as exc:
        raise ConfigError(f"{path}: duplicate key {exc.args[0]!r} in an object") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise KeyError(key)
        out[key] = value
    return out
