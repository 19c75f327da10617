"""The abstract base of every router model and the helpers all models inherit."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from router_models.errors import ConfigError
from router_models.prior import GroupPrior, check_prior

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def _init_matrix(method: str) -> Callable[[torch.Tensor], Any]:
    table: dict[str, Callable[[torch.Tensor], Any]] = {
        "xavier_uniform": nn.init.xavier_uniform_,
        "xavier_normal": nn.init.xavier_normal_,
        "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        "orthogonal": nn.init.orthogonal_,
        "normal": lambda w: nn.init.normal_(w, mean=0.0, std=0.02),
    }
    return table[method]


INIT_METHODS: tuple[str, ...] = (
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
)


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


class BaseModel(nn.Module, abc.ABC):
    """A router: maps a query embedding to one correctness logit per LLM.

    Subclasses build their layers in ``__init__`` and implement only :meth:`forward`. They put
    one module per hidden layer (in order) into ``self.hidden_layers`` (an ``nn.ModuleList``),
    which is what :meth:`get_embeddings` reads.

    Every model carries an input standardization (``input_mean``, ``input_std`` buffers, identity
    by default) applied before ``forward``, so a saved router scores raw query embeddings.

    Any model may predict a residual over a prior (``prior.py``): ``model(x, tasks)`` is then
    ``logit(prior[group]) + forward(x)``, the group being the query's task (``tasks``, indices
    into ``task_names``; -1 or None: the nearest task centroid) or its nearest cluster; with
    ``group_input`` the group also enters as an input feature (a learned vector per group added
    to the standardized embedding). The prior is fitted from the train split by :meth:`fit`
    before training. Without a prior (the default) ``model(x)`` is ``forward(x)``.

    Args:
        input_dim: Embedding width, >= 1.
        hidden_dims: Non-empty list of hidden widths, each >= 1.
        output_dim: Number of LLMs scored, >= 1.
        dropout: Dropout probability in [0, 1) (0 inclusive, 1 exclusive).
        activation: One of :data:`ACTIVATIONS`.
        prior: ``none``, ``task`` or ``cluster`` (``prior.py``).
        clusters: The number of clusters of a cluster prior, 1 to 4096.
        prior_strength: Pseudo-questions each group's mean is shrunk toward the overall mean by.
        group_input: Also feed the group as an input feature (learned models only).
        task_names: The tasks of a task prior, in index order (filled in from the data).
        **kwargs: Model-specific settings, reported by :meth:`get_model_info`.

    Raises:
        ConfigError: If any argument is out of range; the message shows the bad value.
    """

    model_type: str = ""  # set by register_model
    searchable: bool = True  # built from hidden_dims/dropout/activation and trained by a search
    # Fitted in one step from the train split (no parameters, no gradient steps): kNN, group means
    fitted: bool = False
    requires_hidden: bool = True  # hidden_dims must be a non-empty list
    always_prior: bool = False  # keeps a prior even with ``prior: none`` (one group)
    # model_config keys the training data decides, not settings (a search fills them in)
    data_keys: tuple[str, ...] = ("task_names",)
    prior: GroupPrior | None
    group_input: nn.Embedding | None
    hidden_layers: nn.ModuleList  # built by the subclass: one module per hidden layer
    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        output_dim: int,
        dropout: float = 0.1,
        activation: str = "relu",
        prior: str = "none",
        clusters: int = 8,
        prior_strength: float = 10.0,
        group_input: bool = False,
        task_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        check_positive_int("input_dim", input_dim)
        check_positive_int("output_dim", output_dim)
        if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Sequence):
            raise ConfigError(f"hidden_dims must be a list of positive integers, got {hidden_dims!r}")
        if len(hidden_dims) == 0 and type(self).requires_hidden:
            raise ConfigError("hidden_dims must be a non-empty list of positive integers, got []")
        for i, width in enumerate(hidden_dims):
            check_positive_int(f"hidden_dims[{i}]", width)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1) (1 excluded), got {dropout!r}")
        self.get_activation_function(activation)  # validates the name
        kind, groups, strength, names = check_prior(prior, clusters, prior_strength, task_names)
        if not isinstance(group_input, bool):
            raise ConfigError(f"group_input must be true or false, got {group_input!r}")
        if group_input and type(self).fitted:
            raise ConfigError(f"group_input: a {self.model_type} learns no input; leave group_input out")

        self.input_dim = int(input_dim)
        self.hidden_dims = [int(w) for w in hidden_dims]
        self.output_dim = int(output_dim)
        self.dropout = float(dropout)
        self.activation = activation
        self.extra_config: dict[str, Any] = dict(kwargs)
        self.prior_config: dict[str, Any] = {}  # the prior's settings, in model_config when it has one
        if kind != "none" or type(self).always_prior:
            self.prior_config = {"prior": kind, "prior_strength": strength}
            if kind == "cluster":
                self.prior_config["clusters"] = groups
            if kind == "task":
                self.prior_config["task_names"] = names
            if group_input:
                self.prior_config["group_input"] = True
        self.prior_strength = strength
        self.task_names = names
        self.prior = (
            GroupPrior(kind, groups, self.output_dim, self.input_dim, strength) if self.prior_config else None
        )
        self.group_input = None
        if group_input and self.prior is not None and groups > 1:
            # zero at first, and made without drawing from the random stream: the model starts
            # as it would without the group input, every other layer initialized alike
            self.group_input = nn.Embedding(
                groups, self.input_dim, _weight=torch.zeros(groups, self.input_dim)
            )
        self.register_buffer("input_mean", torch.zeros(self.input_dim))
        self.register_buffer("input_std", torch.ones(self.input_dim))
        self.register_forward_pre_hook(_standardize_input)

    @classmethod
    def init_parameters(cls) -> list[inspect.Parameter]:
        """The settings this model's constructor takes, base class first: the named
        parameters of each ``__init__`` up the class chain, for as long as a constructor passes
        ``**common`` on. A subclass names only its own extra settings (``num_blocks``,
        ``noise_std``); the common ones (``input_dim``, ``hidden_dims``, ``output_dim``,
        ``dropout``, ``activation``) and their defaults are :class:`BaseModel`'s alone."""
        levels: list[list[inspect.Parameter]] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = list(inspect.signature(init).parameters.values())[1:]
            levels.append([p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)])
            if klass is BaseModel or not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        chosen: dict[str, inspect.Parameter] = {}
        for level in levels:  # the most derived class's default wins
            for p in level:
                chosen.setdefault(p.name, p)
        order = [p.name for level in reversed(levels) for p in level]
        return [chosen[name] for name in dict.fromkeys(order)]

    # -- the one method a subclass writes -------------------------------------------------
    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map standardized embeddings (batch, input_dim) to logits (batch, output_dim)."""

    # -- calling a router: the prior around forward -------------------------------------------
    def __call__(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> Any:
        """Logits for raw embeddings ``x [..., B, d]``; ``tasks [B]`` (long, -1 unknown) is read
        only by a task prior. Without a prior this is ``nn.Module.__call__`` (hooks, forward)."""
        if self.prior is None:
            return super().__call__(x)
        return self.combine(x, self.prior.assign(x, tasks))

    def combine(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Logits of raw embeddings ``x`` in ``groups``: the prior's plus ``forward``'s residual
        (the group added to the input first with ``group_input``). A model that uses its prior
        otherwise (kNN shrinks its vote toward it) overrides this."""
        if self.group_input is not None:
            # x + E[g] * std is standardized to z + E[g]: the vector is learned in the
            # standardized space, where the first layer reads it
            x = x + self.group_input(groups) * self.input_std
        out = super().__call__(x)
        assert self.prior is not None
        return out + self.prior.logits(groups)

    @torch.no_grad()
    def fit(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        mask: torch.Tensor,
        tasks: torch.Tensor | None = None,
        centroids: torch.Tensor | None = None,
    ) -> None:
        """Fit what the model takes from the train split in one step, before any gradient step:
        the prior's table and centroids (``GroupPrior.fit``; ``centroids``: a cluster prior's,
        already computed for these rows). A fitted model (kNN) also keeps its references here.
        Rows: raw embeddings ``X``, scores ``Y``, observed pairs ``mask``, tasks (indices into
        ``task_names``)."""
        if self.prior is not None:
            self.prior.fit(X, Y, mask, tasks, centroids)

    # -- configuration ----------------------------------------------------------------------
    def model_config(self) -> dict[str, Any]:
        """The ``model_config`` block that rebuilds this model through ``create_model``."""
        return {
            "hidden_dims": list(self.hidden_dims),
            "output_dim": self.output_dim,
            "dropout": self.dropout,
            "activation": self.activation,
            **self.prior_config,
            **self.extra_config,
        }

    def set_input_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the standardization applied to raw embeddings; std values <= 0 become 1."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.numel() != self.input_dim or std.numel() != self.input_dim:
            raise ValueError(
                f"normalization must have {self.input_dim} values, got mean {mean.numel()}, std {std.numel()}"
            )
        std = torch.where(std > 0, std, torch.ones_like(std))
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)

    # -- inherited helpers ------------------------------------------------------------------
    def count_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters; with ``trainable_only`` only those with requires_grad."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def get_model_info(self) -> dict[str, Any]:
        """A JSON-ready summary: type, class, dimensions, settings, parameter counts, size."""
        size_bytes = sum(p.numel() * p.element_size() for p in self.parameters())
        size_bytes += sum(b.numel() * b.element_size() for b in self.buffers())
        return {
            "model_type": self.model_type,
            "class_name": type(self).__name__,
            "input_dim": self.input_dim,
            "hidden_dims": list(self.hidden_dims),
            "output_dim": self.output_dim,
            "dropout": self.dropout,
            "activation": self.activation,
            **self.prior_config,
            **self.extra_config,
            "total_parameters": self.count_parameters(),
            "trainable_parameters": self.count_parameters(trainable_only=True),
            "model_size_mb": size_bytes / 2**20,
        }

    def get_embeddings(self, x: torch.Tensor, layer_idx: int = -1) -> torch.Tensor:
        """The representation after hidden layer ``layer_idx`` for raw embeddings ``x``.

        Args:
            x: Raw query embeddings, shape (batch, input_dim).
            layer_idx: Index into ``hidden_dims``; negative counts from the end.

        Raises:
            IndexError: If ``layer_idx`` is outside [-len(hidden_layers), len(hidden_layers) - 1].
        """
        layers = self.hidden_layers
        n = len(layers)
        if not -n <= layer_idx < n:
            raise IndexError(f"layer_idx {layer_idx} out of range: valid is {-n} to {n - 1}")
        captured: list[torch.Tensor] = []
        handle = layers[layer_idx].register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            self(x)
        finally:
            handle.remove()
        return captured[0]

    def freeze_parameters(self, freeze: bool = True) -> None:
        """Stop (``freeze=True``) or restart gradient flow into every parameter."""
        for p in self.parameters():
            p.requires_grad_(not freeze)

    def get_layer_weights(self, layer_name: str) -> dict[str, torch.Tensor]:
        """Copies of the parameters named ``layer_name`` or starting with ``layer_name.``.

        Raises:
            KeyError: If nothing matches; the message lists the valid parameter names.
        """
        params = dict(self.named_parameters())
        found = {
            k: v.detach().clone()
            for k, v in params.items()
            if k == layer_name or k.startswith(layer_name + ".")
        }
        if not found:
            raise KeyError(f"no layer {layer_name!r}; valid parameter names: {sorted(params)}")
        return found

    def set_layer_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy tensors into the parameters of the same names (all checked before any copy).

        Raises:
            KeyError: On an unknown name, listing the valid names.
            ValueError: On a shape mismatch, showing the expected shape.
        """
        params = dict(self.named_parameters())
        for name, value in weights.items():
            if name not in params:
                raise KeyError(f"no parameter {name!r}; valid parameter names: {sorted(params)}")
            if tuple(value.shape) != tuple(params[name].shape):
                raise ValueError(
                    f"shape mismatch for {name!r}: expected {tuple(params[name].shape)}, "
                    f"got {tuple(value.shape)}"
                )
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value)

    def initialize_weights(self, method: str = "xavier_uniform") -> None:
        """Re-initialize every Linear weight with ``method``; biases become 0.

        Args:
            method: One of :data:`INIT_METHODS`.

        Raises:
            ConfigError: On an unknown method, listing the valid ones.
        """
        if method not in INIT_METHODS:
            raise ConfigError(f"unknown init method {method!r}; valid: {', '.join(INIT_METHODS)}")
        init = _init_matrix(method)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @staticmethod
    def get_activation_function(activation: str) -> nn.Module:
        """A new activation module by name.

        Raises:
            ConfigError: On an unknown name, listing the valid ones.
        """
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        return ACTIVATIONS[activation]()


def _standardize_input(module: BaseModel, args: tuple[Any, ...]) -> tuple[Any, ...]:
    x = args[0]
    return ((x - module.input_mean) / module.input_std, *args[1:])
