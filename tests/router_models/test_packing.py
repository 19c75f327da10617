"""Packs: every registered model packs with members of other widths, activations and dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from router_models import BaseModel, create_model, get_model_class, list_models, register_model
from router_models.model_factory import unregister_model
from router_models.packing import NotPackable, PackedRouter, pack_signature

EMB, N_LLM = 12, 5
MEMBERS = (
    {"hidden_dims": [16, 8], "activation": "relu", "dropout": 0.0},
    {"hidden_dims": [24, 12], "activation": "gelu", "dropout": 0.3},
    {"hidden_dims": [8, 4], "activation": "silu", "dropout": 0.1},
)


def build(model_type: str, **cfg: object) -> BaseModel:
    torch.manual_seed(len(str(cfg)))
    return create_model({"model_type": model_type, "model_config": cfg}, EMB, N_LLM)


@pytest.fixture(
    params=[m for m in list_models() if get_model_class(m).searchable and not get_model_class(m).fitted]
)
def model_type(request: pytest.FixtureRequest) -> str:
    return request.param


def test_pack_reproduces_every_member(model_type: str) -> None:
    members = [build(model_type, **cfg) for cfg in MEMBERS]
    pack = PackedRouter(members).eval()
    x = torch.randn(7, EMB)
    out = pack(x)
    assert out.shape == (3, 7, N_LLM)
    for k, m in enumerate(members):
        torch.testing.assert_close(out[k], m.eval()(x), atol=1e-5, rtol=1e-5)


def test_member_state_dict_rebuilds_the_member(model_type: str) -> None:
    members = [build(model_type, **cfg) for cfg in MEMBERS]
    pack = PackedRouter(members)
    pack(torch.randn(5, EMB)).square().sum().backward()
    with torch.no_grad():  # a step moves the pack's weights; each member's own copy must follow
        for p in pack.parameters():
            if p.grad is not None:
                p.sub_(0.01 * p.grad)
    for k, cfg in enumerate(MEMBERS):
        fresh = build(model_type, **cfg)
        fresh.load_state_dict(pack.member_state_dict(k))  # strict: every name, every shape
        x = torch.randn(3, EMB)
        torch.testing.assert_close(fresh.eval()(x), pack.eval()(x)[k], atol=1e-5, rtol=1e-5)


def test_select_keeps_the_chosen_members_in_order(model_type: str) -> None:
    members = [build(model_type, **cfg) for cfg in MEMBERS]
    pack = PackedRouter(members).eval()
    x = torch.randn(4, EMB)
    before = pack(x)
    pack.select([2, 0])
    after = pack(x)
    assert after.shape == (2, 4, N_LLM)
    torch.testing.assert_close(after, before[[2, 0]])
    assert all(p.shape[0] == 2 for p in pack.parameters())


def test_padded_units_get_zero_gradient(model_type: str) -> None:
    members = [build(model_type, **cfg) for cfg in MEMBERS]
    pack = PackedRouter(members)
    pack(torch.randn(5, EMB)).square().sum().backward()
    narrow = 2  # hidden_dims [8, 4]: everything past its widths is padding
    for path, leaf in pack.leaves.items():
        own = set(leaf.unpack(narrow))
        for name, p in leaf.named_parameters():
            if p.grad is None or name.removesuffix("_io") not in own:
                continue
            grad = p.grad[narrow].clone()
            real = leaf.unpack(narrow)[name.removesuffix("_io")]
            if name == "weight_io":
                grad[: real.shape[1], : real.shape[0]] = 0
            else:
                grad[tuple(slice(0, s) for s in real.shape)] = 0
            assert grad.abs().max() == 0, f"{path}.{name}: padded units got a gradient"


def test_different_depths_do_not_pack() -> None:
    with pytest.raises(NotPackable, match="pack members 0 and 1 differ in structure"):
        PackedRouter([build("mlp", hidden_dims=[16]), build("mlp", hidden_dims=[16, 8])])


def test_activation_that_moves_zero_packs_only_at_equal_widths() -> None:
    with pytest.raises(NotPackable, match="differ in structure"):
        PackedRouter(
            [
                build("mlp", hidden_dims=[16], activation="sigmoid"),
                build("mlp", hidden_dims=[8], activation="sigmoid"),
            ]
        )
    same = [build("mlp", hidden_dims=[16], activation="sigmoid", dropout=0.0) for _ in range(2)]
    PackedRouter(same)  # equal shapes: no padding, fine
    relu = build("mlp", hidden_dims=[16], activation="relu")
    assert pack_signature(relu) != pack_signature(same[0])


def test_meta_models_have_signatures() -> None:
    with torch.device("meta"):
        big = create_model(
            {"model_type": "residual_mlp", "model_config": {"hidden_dims": [10**6]}}, EMB, N_LLM
        )
    small = build("residual_mlp", hidden_dims=[8])
    assert pack_signature(big) == pack_signature(small)  # widths pad


class _Scaled(BaseModel):
    def __init__(self, input_dim: int, hidden_dims: list[int], output_dim: int, **kw: object) -> None:
        super().__init__(input_dim, hidden_dims, output_dim, **kw)  # type: ignore[arg-type]
        self.hidden_layers = nn.ModuleList([nn.Linear(input_dim, hidden_dims[0])])
        self.scale = nn.Parameter(torch.ones(hidden_dims[0]))  # a tensor no packed leaf holds
        self.head = nn.Linear(hidden_dims[0], output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden_layers[0](x) * self.scale)


class _BatchFirst(BaseModel):
    def __init__(self, input_dim: int, hidden_dims: list[int], output_dim: int, **kw: object) -> None:
        super().__init__(input_dim, hidden_dims, output_dim, **kw)  # type: ignore[arg-type]
        self.hidden_layers = nn.ModuleList([nn.Linear(input_dim, hidden_dims[0])])
        self.head = nn.Linear(hidden_dims[0], output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden_layers[0](x)
        return self.head(h - h.mean(dim=0))  # treats dim 0 as the batch: wrong for a pack


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_Scaled, "cannot be packed: the model itself holds scale"),
        (_BatchFirst, "does not reproduce member 0's output"),
    ],
)
def test_models_that_cannot_pack_say_so(cls: type[BaseModel], message: str) -> None:
    register_model("_unpackable")(cls)
    try:
        members = [build("_unpackable", hidden_dims=[6]), build("_unpackable", hidden_dims=[6])]
        with pytest.raises(NotPackable, match=message):
            PackedRouter(members)
    finally:
        unregister_model("_unpackable")
