"""Search spaces: YAML -> typed, validated Space -> Optuna distributions -> trial configs.

A parameter is a fixed value, ``{low, high[, log]}`` (float), ``{low, high[, step][, log]}``
(int: both bounds inclusive), or ``{choices: [...]}``. ``hidden_dims`` is also a choice of
lists or the compact ``{layers, width, shrink}`` form: ``layers`` hidden layers, the first
``width`` wide, each next one half the previous (``shrink: true``, never below 16) or the same.
"""

from search.space.load import load_space, make_sampler, parse_space
from search.space.params import MIN_SHRUNK_WIDTH, Choice, CompactHidden, FloatRange, IntRange
from search.space.schema import TRAIN_PARAMS, DataSpec, Resources, Space, searchable_models
from search.space.search_spec import EnsembleSpec, PrunerSpec, SamplerSpec, SearchSpec

__all__ = [
    "MIN_SHRUNK_WIDTH",
    "TRAIN_PARAMS",
    "Choice",
    "CompactHidden",
    "DataSpec",
    "EnsembleSpec",
    "FloatRange",
    "IntRange",
    "PrunerSpec",
    "Resources",
    "SamplerSpec",
    "SearchSpec",
    "Space",
    "load_space",
    "make_sampler",
    "parse_space",
    "searchable_models",
]
