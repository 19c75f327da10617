"""The docstring examples of the public modules run as tests (and stay true)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "search.api",
    "search.metrics.direction",
    "search.files.rundir",
    "search.trial.protocol",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
