"""``search onboard``: new LLMs from a few scored questions into a saved router (embeddings or
texts), drops, suggested questions, and every bad input as one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import torch

from router_models import create_model, load_router, route, save_router
from search.cli.main import main
from search.routing.router import Router

D, N = 8, 120
NAMES = ["cheap", "mid", "big"]


def _questions(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)).astype(np.float32)
    hard = X[:, 0] + 0.3 * rng.standard_normal(N)
    return X, hard


@pytest.fixture()
def router(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 3-LLM mlp router briefly trained on embeddings whose first axis is difficulty, with a
    margin on ``mid``, costs and a cost curve."""
    X, hard = _questions()
    Y = (hard[:, None] < np.array([-0.5, 0.0, 0.5])).astype(np.float32)
    torch.manual_seed(0)
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [16]}}, D, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(80):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(torch.from_numpy(X)), torch.from_numpy(Y)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    routing = {
        "offsets": [0.0, 0.05, 0.0],
        "rule": "margin on the single best LLM on train, tuned on val",
        "anchor": 1,
        "anchor_name": "mid",
        "margin": 0.05,
        "cost_curve": {"lambda": [0.0, 1.0], "val_cost": [3.0, 0.1]},
    }
    path = tmp_path / "router.pt"
    save_router(
        model.eval(), path, model_names=NAMES, routing=routing, costs=[0.1, 1.0, 3.0], task_names=None
    )
    np.save(tmp_path / "queries.npy", X)
    return path, X


def _scores(
    tmp_path: Path, rows: int = 64, names: tuple[str, ...] = ("new-a", "new-b"), costs: bool = True
) -> Path:
    """A wide table of new LLMs' scores on the first ``rows`` questions, with their embeddings
    beside it (``scores.npy``, row order)."""
    X, hard = _questions()
    columns: dict[str, list] = {"id": list(range(rows))}
    for k, name in enumerate(names):
        columns[name] = (hard[:rows] < 0.25 * k - 0.1).astype(float).tolist()
        if costs:
            columns[f"{name}|total_cost"] = [0.5 + k] * rows
    path = tmp_path / "scores.csv"
    pacsv.write_csv(pa.table(columns), path)
    np.save(tmp_path / "scores.npy", X[:rows])
    return path


def _onboard(router: Path, scores: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "onboard",
            str(router),
            "--scores",
            str(scores),
            "--embeddings",
            str(scores.with_suffix(".npy")),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_new_llms_join_and_the_known_ones_route_as_before(router, tmp_path: Path, capsys) -> None:
    path, X = router
    out = tmp_path / "new.pt"
    assert _onboard(path, _scores(tmp_path), out) == 0
    printed = capsys.readouterr().out
    assert "new-a: fitted on 64 scored questions" in printed and f"wrote {out}: 5 LLMs" in printed
    old, _ = load_router(path)
    new, info = load_router(out)
    assert info["model_names"] == [*NAMES, "new-a", "new-b"]
    assert info["metadata"]["onboarded"]["new-b"]["questions"] == 64
    assert info["costs"] == pytest.approx([0.1, 1.0, 3.0, 0.5, 1.5])
    # the margin kept; a new LLM routed to by its lower bound: one standard error of its level
    fitted = info["metadata"]["onboarded"]
    wary = [
        -((f["mean_score"] * (1 - f["mean_score"]) / 64) ** 0.5) for f in (fitted["new-a"], fitted["new-b"])
    ]
    assert info["offsets"] == pytest.approx([0.0, 0.05, 0.0, *wary]) and all(w < -0.03 for w in wary)
    with torch.no_grad():
        assert torch.equal(new(torch.from_numpy(X))[:, :3], old(torch.from_numpy(X)))
    # the Router, route and budgets take the new LLMs like the others
    r = Router.load(out)
    names = r.route_embeddings(X)
    assert set(names) <= set(info["model_names"])
    assert r.lambda_for_budget(1.0) >= 0
    routes = tmp_path / "routes.csv"
    assert (
        main(["route", str(out), str(tmp_path / "queries.npy"), "--out", str(routes), "--budget", "1.0"]) == 0
    )
    chosen = pacsv.read_csv(routes).column("llm_index").to_pylist()
    with torch.no_grad():
        logits = new(torch.from_numpy(X))
    lam = r.lambda_for_budget(1.0)
    assert chosen == route(logits, [-lam * c for c in info["costs"]]).tolist()


def test_drop_removes_an_llm_and_a_dropped_anchor_routes_plainly(router, tmp_path: Path, capsys) -> None:
    path, X = router
    out = tmp_path / "dropped.pt"
    assert main(["onboard", str(path), "--drop", "big", "--out", str(out)]) == 0
    old, _ = load_router(path)
    new, info = load_router(out)
    assert info["model_names"] == ["cheap", "mid"] and info["metadata"]["dropped"] == ["big"]
    assert info["offsets"] == [0.0, 0.05]
    assert "cost_curve" not in info["routing"]  # no questions to measure a budget on
    with torch.no_grad():
        assert torch.equal(new(torch.from_numpy(X)), old(torch.from_numpy(X))[:, :2])
    assert main(["onboard", str(out), "--drop", "mid", "--out", str(tmp_path / "d2.pt")]) == 0
    info2 = load_router(tmp_path / "d2.pt")[1]
    assert info2["offsets"] == [0.0] and "dropped" in info2["routing"]["rule"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: _scores(t, names=("mid",)), "LLM 'mid' is already one of the router's 3 LLMs"),
        (lambda t: _scores(t, rows=5), "LLM 'new-a' has 5 scored question(s); onboarding needs at least 8"),
        (lambda t: _scores(t, names=("easy",), rows=10).with_name("const.csv"), "every score of LLM"),
        (lambda t: _scores(t, costs=False), "routes by cost, so each new LLM needs its costs"),
    ],
)
def test_bad_scores_are_one_line_and_exit_2(router, tmp_path: Path, capsys, make, message: str) -> None:
    path, _ = router
    scores = make(tmp_path)
    if scores.name == "const.csv":  # every score the same
        pacsv.write_csv(
            pa.table({"id": list(range(10)), "easy": [1.0] * 10, "easy|total_cost": [1.0] * 10}), scores
        )
        np.save(scores.with_suffix(".npy"), _questions()[0][:10])
    out = tmp_path / "new.pt"
    assert _onboard(path, scores, out) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_other_bad_inputs_are_one_line(router, tmp_path: Path, capsys) -> None:
    path, _ = router
    scores = _scores(tmp_path)
    np.save(tmp_path / "wide.npy", np.zeros((64, D + 1), dtype=np.float32))
    cases = [
        (
            ["--drop", "nobody", "--out", str(tmp_path / "x.pt")],
            "--drop nobody: not one of the router's LLMs",
        ),
        (["--out", str(tmp_path / "x.pt")], "nothing to do: give --scores NEW"),
        (["--scores", str(scores)], "give --out NEW_ROUTER.pt"),
        (
            [
                "--scores",
                str(scores),
                "--embeddings",
                str(tmp_path / "wide.npy"),
                "--out",
                str(tmp_path / "x.pt"),
            ],
            "9-d embeddings, but",
        ),
        (
            ["--scores", str(scores), "--out", str(tmp_path / "x.pt")],
            "holds no embeddings; give --embeddings",
        ),
        (["--suggest", "4"], "a router file does not carry its data; give --from POOL"),
        (["--suggest", "0", "--from", str(tmp_path / "scores.npy")], "--suggest must be a count >= 1"),
        (["--suggest", "65", "--from", str(tmp_path / "scores.npy")], "holds 64 questions; ask for at most"),
    ]
    for args, message in cases:
        assert main(["onboard", str(path), *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)


def test_suggest_writes_k_distinct_questions_deterministic_for_a_seed(router, tmp_path: Path, capsys) -> None:
    path, _ = router
    _scores(tmp_path)
    pool = tmp_path / "scores.npy"

    def suggest(seed: int, name: str) -> list[int]:
        out = tmp_path / name
        assert (
            main(
                [
                    "onboard",
                    str(path),
                    "--suggest",
                    "16",
                    "--from",
                    str(pool),
                    "--suggest-seed",
                    str(seed),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        return pacsv.read_csv(out).column("id").to_pylist()

    a, b, c = suggest(0, "a.csv"), suggest(0, "b.csv"), suggest(1, "c.csv")
    assert a == b and len(set(a)) == 16 and a != c
    assert "16 questions from" in capsys.readouterr().out
    # spread over difficulty: one per sixteenth of the pool ordered by the known LLMs' mean
    X = torch.from_numpy(np.load(pool))
    with torch.no_grad():
        mean = torch.sigmoid(load_router(path)[0](X)).mean(1)
    ranks = torch.argsort(torch.argsort(mean, stable=True))[a]
    assert sorted((ranks // 4).tolist()) == list(range(16))


def test_texts_are_embedded_by_the_routers_encoder(tmp_path: Path, capsys) -> None:
    from tests.search.encoders import make_encoder
    from tests.search.serving import make_router

    encoder = make_encoder(tmp_path / "enc", seed=0, dim=16, max_seq_length=16)
    path = make_router(tmp_path / "router.pt", encoder, costs=False)
    words = ["what", "is", "the", "sum", "capital", "france", "derivative", "poem", "write", "code"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 4)) + f" {i}" for i in range(40)]
    prompts = tmp_path / "pool.jsonl"
    prompts.write_text("".join(json.dumps({"id": 100 + i, "prompt": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "suggested.csv"
    assert (
        main(
            [
                "onboard",
                str(path),
                "--suggest",
                "12",
                "--from",
                str(prompts),
                "--encoder",
                str(encoder),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pacsv.read_csv(out).to_pydict()
    assert len(set(table["id"])) == 12 and all(i >= 100 for i in table["id"])
    # their embeddings beside, by the router's encoder, with its record
    vectors = np.load(tmp_path / "suggested.npy")
    r0 = Router.load(path, encoder=str(encoder))
    np.testing.assert_allclose(vectors, r0.embed(table["prompt"]), rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "suggested.npy.encoder.json").read_text()) == r0.info["encoder"]
    assert set(table["prompt"]) <= set(texts)  # the field the router's template reads
    # score the new LLM on them and feed them back: the whole workflow
    scored = tmp_path / "scored.jsonl"
    scored.write_text(
        "".join(
            json.dumps({"id": i, "prompt": q, "scores": {"new-llm": float(k % 3 == 0)}}) + "\n"
            for k, (i, q) in enumerate(zip(table["id"], table["prompt"]))
        )
    )
    new = tmp_path / "new.pt"
    assert (
        main(["onboard", str(path), "--scores", str(scored), "--encoder", str(encoder), "--out", str(new)])
        == 0
    )
    r = Router.load(new, encoder=str(encoder))
    assert r.names[-1] == "new-llm" and r.info["encoder"] == load_router(path)[1]["encoder"]
    assert len(r.route(["what is the capital of france"])) == 1
    # or the suggested file itself with a score column, and its embeddings: nothing embedded again
    scored_csv = tmp_path / "scored.csv"
    column = pa.array([float(k % 3 == 0) for k in range(12)])
    pacsv.write_csv(pacsv.read_csv(out).append_column("new-llm", column), scored_csv)
    again = tmp_path / "again.pt"
    argv = [
        "onboard",
        str(path),
        "--scores",
        str(scored_csv),
        "--embeddings",
        str(tmp_path / "suggested.npy"),
    ]
    assert main([*argv, "--out", str(again)]) == 0
    with torch.no_grad():
        X = torch.from_numpy(vectors)
        assert torch.allclose(load_router(again)[0](X), load_router(new)[0](X), atol=1e-5)
    # another encoder's embeddings are refused
    other = make_encoder(tmp_path / "other", seed=5, dim=16, max_seq_length=16)
    assert (
        main(
            [
                "onboard",
                str(path),
                "--scores",
                str(scored),
                "--encoder",
                str(other),
                "--out",
                str(tmp_path / "o.pt"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "embedded by another encoder than" in err and not (tmp_path / "o.pt").exists()


def test_the_python_api_onboards_and_suggests(router, tmp_path: Path) -> None:
    import search

    path, X = router
    scores = _scores(tmp_path)
    done = search.onboard(
        path, tmp_path / "api.pt", scores=str(scores), embeddings=str(tmp_path / "scores.npy")
    )
    assert done.added == {"new-a": 64, "new-b": 64} and done.names[-2:] == ["new-a", "new-b"]
    dropped = search.onboard(tmp_path / "api.pt", tmp_path / "d.pt", drop=["new-a"])
    assert dropped.names == [*NAMES, "new-b"]
    picked = search.suggest(path, 8, pool=tmp_path / "scores.npy", seed=3)
    assert len(set(picked.ids)) == 8 and picked.X is not None and picked.X.shape == (8, D)
    with pytest.raises(search.UserError, match="search.onboard: drop must be a list of names"):
        search.onboard(path, tmp_path / "x.pt", drop="new-a")
    with pytest.raises(search.UserError, match="search.suggest: k must be a whole number >= 1"):
        search.suggest(path, 0, pool=tmp_path / "scores.npy")
    with pytest.raises(search.UserError, match="unknown argument"):
        search.onboard(path, tmp_path / "x.pt", scores=str(scores), embedings="typo.npy")
