"""Cost-aware routing: the accuracy-cost curve, AIQ, budgets; costs through every data format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from router_models import route
from search import metrics as M
from search.data import load_data, write_parquet_layout
from search.data.router_data import RouterData
from tests.conftest import write_embedllm

COSTS = [0.005, 0.0005, 0.00008]  # dear, middle, cheap


def _problem(n: int = 300, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, 3, generator=gen) < torch.tensor([0.8, 0.6, 0.4])).float()
    logits = (y * 2 - 1) * 0.5 + torch.randn(n, 3, generator=gen)
    mask = torch.ones(n, 3, dtype=torch.bool)
    cost = torch.tensor(COSTS).expand(n, 3).clone()
    return logits, y, mask, cost, torch.tensor(COSTS)


def test_lambda_zero_is_plain_routing_and_a_huge_lambda_the_cheapest() -> None:
    logits, y, mask, cost, mean = _problem()
    lambdas = M.lambda_grid(mean)
    assert lambdas[0] == 0.0 and all(b > a for a, b in zip(lambdas, lambdas[1:]))
    accs, costs = M.cost_curve(logits, y, mask, cost, mean, lambdas)
    assert accs[0] == pytest.approx(M.route_acc(logits, y, mask))
    assert route(logits, (-lambdas[-1] * mean).tolist()).eq(2).all()  # always the cheapest
    assert costs[-1] == pytest.approx(COSTS[2]) and accs[-1] == pytest.approx(float(y[:, 2].mean()))


def test_realized_cost_falls_as_lambda_grows() -> None:
    logits, y, mask, cost, mean = _problem(seed=4)
    _, costs = M.cost_curve(logits, y, mask, cost, mean, M.lambda_grid(mean))
    assert all(b <= a + 1e-12 for a, b in zip(costs, costs[1:]))
    assert costs[0] > costs[-1]


def test_aiq_textbook_cases() -> None:
    # one straight line from (1, 0.5) to (3, 0.9): the average height is 0.7
    costs, accs = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.7, 0.9])
    assert M.aiq(costs, accs, 1.0, 3.0) == pytest.approx(0.7, abs=1e-4)
    # a point under the hull does not count; a worse dearer point does not lower it
    assert M.aiq(np.array([1.0, 2.0, 3.0, 3.5]), np.array([0.5, 0.55, 0.9, 0.6]), 1.0, 3.0) == pytest.approx(
        0.7, abs=1e-4
    )
    # below the cheapest point the router reaches nothing
    assert M.aiq(np.array([2.0]), np.array([0.8]), 1.0, 3.0) == pytest.approx(0.4, abs=1e-3)


def test_budget_figures_and_lambda_for_a_budget() -> None:
    costs, accs = np.array([4.0, 2.0, 1.0]), np.array([0.80, 0.78, 0.60])
    fig = M.budget_figures(costs, accs, reference_cost=4.0, reference_acc=0.8)
    assert fig["acc_at_half_cost"] == pytest.approx(0.78)
    assert fig["cost_share_for_95pct"] == pytest.approx(0.5)  # 0.78 >= 0.76 at cost 2
    assert M.lambda_for_budget(costs, [0.0, 1.0, 2.0], 2.5) == (1.0, 2.0)
    assert M.lambda_for_budget(costs, [0.0, 1.0, 2.0], 0.5) == (2.0, 1.0)  # unreachable: cheapest


def _with_costs(folder: Path) -> None:
    """Per-pair costs in the long tables, per-model costs in model_order."""
    for split in ("train", "val", "test"):
        lines = (folder / f"{split}.csv").read_text().splitlines()
        out = [lines[0] + ",cost"]
        for line in lines[1:]:
            m = int(line.split(",")[1])
            out.append(f"{line},{COSTS[m % 3] * (1 + (m == 0))}")
        (folder / f"{split}.csv").write_text("\r\n".join(out) + "\r\n")  # CRLF too
    (folder / "model_order.csv").write_text(
        '\ufeff"model_id","model_name","cost"\n'
        + "".join(f'{j},"llm-{j}",{COSTS[j % 3]}\n' for j in range(4))
    )


def test_costs_round_trip_through_the_folder_layouts(tmp_path: Path) -> None:
    folder = write_embedllm(tmp_path / "csv", m=4)
    _with_costs(folder)  # with a BOM, quoted header names and CRLF line ends
    data = load_data(folder)
    assert data.has_costs and data.model_names == ["llm-0", "llm-1", "llm-2", "llm-3"]
    assert data.cost[data.mask[:, 0], 0] == pytest.approx(2 * COSTS[0])  # the pair's own cost wins
    assert data.mean_cost() == pytest.approx([2 * COSTS[0], COSTS[1], COSTS[2], COSTS[0]], rel=1e-5)
    write_parquet_layout(data, tmp_path / "pq")
    again = load_data(tmp_path / "pq")
    assert np.allclose(again.cost[again.mask], data.cost[data.mask])
    assert np.array_equal(again.Y, data.Y) and np.array_equal(again.mask, data.mask)


def _wide_frame(data: RouterData) -> dict:
    n = data.X.shape[0]
    split = np.empty(n, dtype=object)
    for s, idx in data.splits.items():
        split[idx] = s
    cols: dict = {
        "sample_id": np.arange(n),
        "prompt": [f"q{i}, with a comma\nand a line" for i in range(n)],
        "split": split,
    }
    for j, name in enumerate(data.model_names):
        cols[name] = np.where(data.mask[:, j], data.Y[:, j] * 0.9 + 0.05, np.nan)  # scores, not 0/1
        cols[f"{name}|model_response"] = ["..."] * n
        cols[f"{name}|total_cost"] = data.cost[:, j]
    return cols


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "jsonl"])
def test_costs_round_trip_through_wide_tables_and_records(tmp_path: Path, fmt: str) -> None:
    folder = write_embedllm(tmp_path / "src", m=4)
    _with_costs(folder)
    data = load_data(folder)
    cols = _wide_frame(data)
    np.save(tmp_path / "emb.npy", data.X)
    path = tmp_path / f"wide.{fmt}"
    if fmt in ("csv", "parquet"):
        table = pa.table({k: pa.array(list(v)) for k, v in cols.items()})
        if fmt == "parquet":
            pq.write_table(table, path)
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, path)  # pyarrow quotes the header names
    else:
        records = [
            {
                "id": int(i),
                "question": cols["prompt"][i],
                "split": cols["split"][i],
                "scores": {
                    m: (None if np.isnan(cols[m][i]) else float(cols[m][i])) for m in data.model_names
                },
                "costs": {m: float(cols[f"{m}|total_cost"][i]) for m in data.model_names},
            }
            for i in range(len(cols["prompt"]))
        ]
        text = "\n".join(json.dumps(r) for r in records) if fmt == "jsonl" else json.dumps(records)
        path.write_text(text)
    got = load_data(path, embeddings=tmp_path / "emb.npy", threshold=0.5)
    assert got.model_names == data.model_names
    assert np.array_equal(got.mask, data.mask) and np.array_equal(got.Y, data.Y)
    assert np.allclose(got.cost, data.cost, equal_nan=True)
    assert all(np.array_equal(got.splits[s], data.splits[s]) for s in data.splits)
    # aligned by id: the embeddings in another order, the id column says which row
    perm = np.random.default_rng(0).permutation(data.X.shape[0])
    np.save(tmp_path / "shuffled.npy", data.X[perm])
    inverse = np.argsort(perm)
    if fmt in ("csv", "parquet"):
        cols["sample_id"] = inverse
        table = pa.table({k: pa.array(list(v)) for k, v in cols.items()})
        path2 = tmp_path / f"by_id.{fmt}"
        (
            pq.write_table(table, path2)
            if fmt == "parquet"
            else __import__("pyarrow.csv").csv.write_csv(table, path2)
        )
        by_id = load_data(path2, embeddings=tmp_path / "shuffled.npy", align="id", threshold=0.5)
        assert np.array_equal(by_id.X, data.X)


def test_convert_cli_makes_a_split_when_the_source_has_none(tmp_path: Path, capsys) -> None:
    from search.__main__ import main

    rng = np.random.default_rng(1)
    n = 50
    records = [{"question": f"q{i}", "scores": {"a": int(rng.random() < 0.5), "b": 1}} for i in range(n)]
    (tmp_path / "r.json").write_text(json.dumps(records))
    np.save(tmp_path / "e.npy", rng.standard_normal((n, 4)).astype(np.float32))
    argv = [
        "data",
        "convert",
        str(tmp_path / "r.json"),
        str(tmp_path / "out"),
        "--embeddings",
        str(tmp_path / "e.npy"),
    ]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    data = load_data(tmp_path / "out")
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    again = load_data(tmp_path / "r.json", embeddings=tmp_path / "e.npy", seed=7)
    assert not np.array_equal(again.splits["val"], data.splits["val"])  # the seed decides
    # what a user gets wrong: one line each, exit 2
    assert main(["data", "convert", str(tmp_path / "r.json"), str(tmp_path / "o2")]) == 2
    assert "holds no embeddings; give --embeddings FILE" in capsys.readouterr().err
    records[3]["scores"]["a"] = 1.7
    (tmp_path / "s.json").write_text(json.dumps(records))
    assert (
        main(
            [
                "data",
                "convert",
                str(tmp_path / "s.json"),
                str(tmp_path / "o3"),
                "--embeddings",
                str(tmp_path / "e.npy"),
            ]
        )
        == 2
    )
    assert "record 3: score of 'a' 1.7 is not a score in [0, 1]" in capsys.readouterr().err


def test_exported_routers_keep_the_val_cost_curve_a_served_budget_is_met_by(tmp_path: Path) -> None:
    """A router saved at its margin records the val cost curve; meeting a budget with it where it
    is served picks the lambda the search's own budget export picks."""
    from router_models import create_model, save_router
    from search.routing.offsets import budget_routing, margin_routing
    from search.routing.router import Router

    folder = write_embedllm(tmp_path / "csv", m=4)
    _with_costs(folder)
    data = load_data(folder)
    torch.manual_seed(0)
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [8]}}, data.X.shape[1], 4)
    with torch.no_grad():
        logits = model(torch.from_numpy(data.split("val")[0]))
    block = margin_routing(logits, data)
    curve = block["cost_curve"]
    assert len(curve["lambda"]) == len(curve["val_cost"]) == len(M.lambda_grid(data.mean_cost()))
    assert curve["val_cost"] == sorted(curve["val_cost"], reverse=True)
    save_router(model, tmp_path / "r.pt", routing=block, costs=data.mean_cost().tolist())
    router = Router.load(tmp_path / "r.pt")
    for budget in (curve["val_cost"][0] + 1, curve["val_cost"][10], curve["val_cost"][-1], 0.0):
        assert router.lambda_for_budget(budget) == budget_routing(logits, data, budget)["lambda"]
    no_costs = RouterData(data.X, data.Y, data.mask, data.model_names, data.splits, source="x")
    assert "cost_curve" not in margin_routing(logits, no_costs)
