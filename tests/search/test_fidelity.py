"""Data as a fidelity: seeded, nested subsets of the train questions in early epochs."""

from __future__ import annotations

import pytest
import torch

import search.trial.pack_run as pack_run
from search.data import load_data
from search.driver.plan import make_fidelity
from search.errors import SpaceError
from search.space import parse_space
from search.trial.fidelity import Fidelity
from search.trial.train import train_pack
from tests.search.spaces import tiny_space
from tests.search.test_packs import DATA, cfg


def test_the_schedule_grows_from_min_fraction_to_all_at_full_epoch() -> None:
    f = Fidelity("data", 0.25, 3, seed=0)
    assert [f.fraction(e) for e in (1, 2, 3, 4)] == pytest.approx([0.25, 0.5, 1.0, 1.0])
    assert f.schedule(5, 1000) == [250, 500, 1000, 1000, 1000]
    assert Fidelity().schedule(3, 7) == [7, 7, 7]  # epochs: every question, every epoch
    assert Fidelity("data", 0.001, 2).size(1, 10) == 1  # never an empty epoch


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resource": "steps"}, "resource must be one of epochs, data, got 'steps'"),
        ({"min_fraction": 0.0}, r"min_fraction must be in \(0, 1\], got 0.0"),
        ({"min_fraction": 1.5}, r"min_fraction must be in \(0, 1\], got 1.5"),
        ({"full_epoch": 0}, "full_epoch must be >= 1, got 0"),
    ],
)
def test_bad_arguments_are_refused_with_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fidelity(**kwargs)


def test_subsets_are_nested_seeded_and_shuffled_each_epoch() -> None:
    train = torch.arange(100, 200)
    f = Fidelity("data", 0.1, 4, seed=3)
    order = f.order(train)
    assert sorted(order.tolist()) == train.tolist() and not torch.equal(order, train)
    assert torch.equal(order, Fidelity("data", 0.1, 4, seed=3).order(train))  # seeded
    gen = torch.Generator().manual_seed(0)
    rows = [f.rows(order, e, gen) for e in (1, 2, 3, 4)]
    sets = [set(r.tolist()) for r in rows]
    assert [len(s) for s in sets] == f.schedule(4, 100) == [10, 22, 46, 100]
    assert sets[0] <= sets[1] <= sets[2] <= sets[3] == set(train.tolist())  # nested
    assert rows[0].tolist() != order[:10].tolist() or rows[1].tolist() != order[:22].tolist()


def test_the_trainer_trains_each_epoch_on_its_scheduled_rows(monkeypatch) -> None:
    data = load_data(DATA)
    seen: list[set[int]] = []
    real = pack_run.train_epoch

    def spy(pack, X, Y, mask, perm, batch_size, T=None):
        seen.append(set(perm.tolist()))
        return real(pack, X, Y, mask, perm, batch_size, T)

    monkeypatch.setattr(pack_run, "train_epoch", spy)
    fidelity = Fidelity("data", 0.25, 3, seed=1)
    (small,) = train_pack([cfg()], data, seeds=[1], fidelity=fidelity)
    train = set(data.splits["train"].tolist())
    assert [len(s) for s in seen] == fidelity.schedule(4, len(train))
    assert seen[0] < seen[1] < seen[2] == seen[3] == train
    seen.clear()
    (full,) = train_pack([cfg()], data, seeds=[1])
    assert all(s == train for s in seen)
    assert small.history != full.history  # the early epochs saw less


def test_the_space_option_and_its_auto_full_epoch() -> None:
    def fidelity(**search) -> Fidelity:
        return make_fidelity(parse_space(tiny_space(params={"epochs": 12}, search=search)))

    sh = {"type": "successive_halving", "min_resource": 2, "reduction_factor": 5}
    on = fidelity(pruner=sh, fidelity={"resource": "data"})
    assert (on.resource, on.min_fraction, on.full_epoch) == ("data", 0.25, 10)  # the rung at 10
    assert fidelity(fidelity={"resource": "data"}).full_epoch == 6  # no rungs: half the epochs
    assert fidelity(fidelity={"resource": "data", "full_epoch": 4, "min_fraction": 0.5}).full_epoch == 4
    assert not fidelity().on
    with pytest.raises(SpaceError, match=r"search.fidelity.resource: .*'epochs' or 'data'"):
        parse_space(tiny_space(search={"fidelity": {"resource": "rows"}}))
