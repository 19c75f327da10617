"""router-search: hyperparameter search for LLM routers.

``search.run(space, ...)`` searches a space and returns a ``RunResult``; ``search.train(configs,
...)`` trains configs; ``search.Router`` routes texts or embeddings with a saved router. Mistakes
in what is asked raise ``search.UserError`` (one line). Nothing heavy is imported until used:
``python -m search`` starts fast.
"""

from __future__ import annotations

from typing import Any

from search.errors import UserError

__all__ = ["BestTrial", "Router", "RunResult", "UserError", "onboard", "run", "suggest", "train"]

_LAZY = {
    "run": "search.api",
    "train": "search.api",
    "onboard": "search.api",
    "suggest": "search.api",
    "RunResult": "search.api",
    "BestTrial": "search.api",
    "Router": "search.routing.router",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
