"""Graded scores as soft targets, metrics defined for grades, metric rules per task, per-task
tables with the best LLM per task, and the leakage check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from search import metrics as M
from search.__main__ import main
from search.data import RouterData, load_data
from search.data.leakage import NEAR_COSINE, deduped, find_leakage
from search.data.router_data import no_signal, split_by_question
from search.data.scores import apply_rules, parse_rules, rule_text
from search.errors import DataError
from search.results.baselines import TASK_BEST
from search.results.routing_table import routing_table
from search.routing.inference import predict
from search.trial.train import train_router


def graded_set(n: int = 600, seed: int = 0) -> RouterData:
    """Two clusters of questions, two LLMs, every score below 0.5: LLM a scores 0.45 on
    cluster 0 and 0.1 on cluster 1, LLM b the other way round. A threshold at 0.5 makes every
    label 0; the grades say which LLM to pick."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 8)).astype(np.float32) * 0.3
    X[:, 0] += np.where(cluster == 0, 2.0, -2.0)
    high, low = 0.45, 0.1
    Y = np.stack([np.where(cluster == 0, high, low), np.where(cluster == 0, low, high)], 1)
    Y = np.clip(Y + rng.normal(scale=0.03, size=Y.shape), 0, 0.49).astype(np.float32)
    return RouterData(X, Y, np.ones_like(Y, dtype=bool), ["a", "b"], split_by_question(n, seed), "graded")


def cfg(epochs: int = 30) -> dict:
    return {
        "pipeline_config": {
            "model_type": "mlp",
            "model_config": {"hidden_dims": [16], "dropout": 0.0, "activation": "relu"},
            "train_config": {"epochs": epochs, "batch_size": 64, "lr": 1e-2},
        }
    }


def test_soft_targets_learn_what_a_threshold_throws_away() -> None:
    data = graded_set()
    result = train_router(cfg(), data, metric="val_route_acc", seed=0)
    _, y, m = data.split("test")
    scores = predict(result.model, torch.from_numpy(data.split("test")[0]))
    routed = M.route_acc(scores, y, m)
    oracle = M.oracle_route_acc(y, m)
    single = M.single_best_route_acc(*data.split("train")[1:], y, m)
    # the router picks the right LLM nearly always: its mean score is near the oracle's
    assert routed > single + 0.1 and routed == pytest.approx(oracle, abs=0.02)
    # the predictions are grades: calibrated near 0.45 and 0.1, not 0/1
    p = torch.sigmoid(scores)
    assert 0.3 < float(p.max()) < 0.6 and float(p.min()) < 0.2

    thresholded = graded_set()
    thresholded.Y = (thresholded.Y >= 0.5).astype(np.float32)
    assert not thresholded.Y.any()  # every label 0: nothing left to route by, and it is said
    assert "carries no signal" in (no_signal(thresholded) or "")


def test_mean_score_routing_is_routing_accuracy_on_binary_data() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((50, 4)) < 0.5).astype(np.float32)
    mask = rng.random((50, 4)) < 0.9
    mask[:, 0] = True
    logits = torch.from_numpy(rng.normal(size=(50, 4)).astype(np.float32))
    choice = torch.where(torch.from_numpy(mask), logits, torch.tensor(-1e9)).argmax(1)
    right = [float(y[i, int(c)]) for i, c in enumerate(choice)]
    assert M.route_acc(logits, y, mask) == pytest.approx(np.mean(right))
    # the oracle's mean best score is the share of questions some LLM got right
    assert M.oracle_route_acc(y, mask) == pytest.approx(float((y * mask).max(1).mean()))


def test_graded_correctness_and_auc_reduce_to_the_usual_ones() -> None:
    rng = np.random.default_rng(2)
    y01 = (rng.random((40, 3)) < 0.4).astype(np.float32)
    mask = np.ones_like(y01, dtype=bool)
    logits = torch.from_numpy(rng.normal(size=(40, 3)).astype(np.float32))
    usual = float(((logits > 0).numpy() == (y01 == 1)).mean())
    assert M.correctness_acc(logits, y01, mask) == pytest.approx(usual)
    # a grade of 0.7 with a prediction of "right" agrees 0.7; with "wrong", 0.3
    y = np.array([[0.7, 0.7]], dtype=np.float32)
    assert M.correctness_acc(torch.tensor([[1.0, -1.0]]), y, np.ones((1, 2), bool)) == pytest.approx(0.5)
    assert M.correctness_acc(torch.tensor([[1.0, 1.0]]), y, np.ones((1, 2), bool)) == pytest.approx(0.7)
    # AUC with grades: ranking by the grade itself beats the reverse ranking
    g = rng.random((60, 2)).astype(np.float32)
    ones = np.ones_like(g, dtype=bool)
    # (grades are partly negative, so even the best order stays below 1; no ties here, so the
    # reverse order is its complement)
    best, worst = M.auc(torch.from_numpy(g), g, ones), M.auc(torch.from_numpy(-g), g, ones)
    noise = M.auc(torch.from_numpy(rng.random((60, 2)).astype(np.float32)), g, ones)
    assert best > 0.75 and best + worst == pytest.approx(1.0) and best > noise


def test_metric_rules_parse_check_and_apply() -> None:
    assert parse_rules("mmlu=positive, gsm8k=mean") == {"mmlu": "positive", "gsm8k": "mean"}
    assert parse_rules({"mmlu": 0.5}) == {"mmlu": 0.5}
    assert rule_text(parse_rules("positive,gsm8k=mean")) == "positive,gsm8k=mean"
    with pytest.raises(DataError, match=r"metric_rule mmlu='top': valid: mean, positive, or a threshold"):
        parse_rules("mmlu=top")
    with pytest.raises(DataError, match=r"task 'a' is given twice"):
        parse_rules("a=mean,a=positive")
    y = np.array([[0.3, 0.0], [0.3, 0.8], [0.6, 0.2]], dtype=np.float32)
    mask = np.ones_like(y, dtype=bool)
    tasks = np.array([0, 1, 1])
    out = apply_rules(y, mask, parse_rules("mc=positive,code=0.5"), tasks, ["mc", "code"], "s")
    np.testing.assert_array_equal(out, [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    kept = apply_rules(y, mask, parse_rules("mc=positive"), tasks, ["mc", "code"], "s")
    np.testing.assert_allclose(kept[1:], y[1:])  # tasks not named keep their grade
    with pytest.raises(DataError, match=r"no task 'gsm8k'; its tasks: mc, code"):
        apply_rules(y, mask, parse_rules("gsm8k=mean"), tasks, ["mc", "code"], "s")
    with pytest.raises(DataError, match=r"names task 'mc' but data s has no tasks"):
        apply_rules(y, mask, parse_rules("mc=mean"), None, None, "s")


def _records(tmp: Path, name: str, task: str | None, n: int, seed: int, graded: bool) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a = float(rng.random()) if graded else float(rng.random() < 0.5)
        row = {"question": f"{name} question {i}", "scores": {"x": a, "y": 1.0 - a}}
        if task:
            row["task"] = task if i % 2 else f"{task}-b"
        rows.append(row)
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(rows))
    return path


def test_tasks_from_a_field_rules_per_task_and_the_best_llm_per_task(tmp_path: Path) -> None:
    path = _records(tmp_path, "r", "mc", 200, 0, graded=True)
    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32))
    data = load_data(path, embeddings=str(emb))
    assert data.task_names == ["mc", "mc-b"] and data.tasks is not None
    graded = data.Y[data.mask]
    assert ((graded > 0) & (graded < 1)).any()  # grades kept
    ruled = load_data(path, embeddings=str(emb), metric_rule="mc=positive,mc-b=0.5")
    mc = data.tasks == 0
    np.testing.assert_array_equal(ruled.Y[mc], (data.Y[mc] > 0).astype(np.float32))
    np.testing.assert_array_equal(ruled.Y[~mc], (data.Y[~mc] >= 0.5).astype(np.float32))

    # the best LLM per task, picked on train: x on one task, y on the other
    y = np.zeros((8, 2), np.float32)
    y[:4, 0], y[4:, 1] = 1, 1
    tasks = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert M.task_best(y, np.ones_like(y, bool), tasks, 2) == [0, 1]
    scores = M.task_best_scores(y, np.ones_like(y, bool), tasks, np.array([1, 0]), 2)
    assert scores.argmax(1).tolist() == [1, 0]


def test_routing_table_and_describe_report_per_task(tmp_path: Path, capsys) -> None:
    path = _records(tmp_path, "r", "mc", 300, 1, graded=True)
    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32))
    data = load_data(path, embeddings=str(emb))
    table = routing_table([], data)
    assert any(r["baseline"] == TASK_BEST for r in table.rows)
    assert {row["task"] for row in table.tasks} == {"mc", "mc-b"}
    assert all({"single_best", "task_best", "oracle"} <= set(row) for row in table.tasks)
    assert all(row["task_best"] <= row["oracle"] + 1e-9 for row in table.tasks)
    assert "graded scores: routing is the mean score of the chosen LLM" in table.text
    assert main(["data", "describe", str(path), "--embeddings", str(emb)]) == 0
    out = capsys.readouterr().out
    assert "scores: graded" in out and "best per task" in out and "best LLM" in out


def test_leakage_counts_exact_and_near_per_split_and_task_and_dedupe_drops_them() -> None:
    rng = np.random.default_rng(3)
    n = 40
    X = rng.normal(size=(n, 16)).astype(np.float32)
    texts = [f"q{i}" for i in range(n)]
    splits = {"train": np.arange(0, 30), "val": np.arange(30, 35), "test": np.arange(35, 40)}
    texts[31] = texts[2]  # val repeats a train question word for word
    texts[36] = "  q5 "  # test repeats one too, up to whitespace
    texts[37] = texts[33]  # and one of val
    X[38] = X[7] + 1e-4  # a near-duplicate of a train question (another text)
    Y = (rng.random((n, 2)) < 0.5).astype(np.float32)
    tasks = np.array([i % 2 for i in range(n)])
    data = RouterData(
        X,
        Y,
        np.ones_like(Y, bool),
        ["a", "b"],
        splits,
        "hand",
        texts=texts,
        tasks=tasks,
        task_names=["even", "odd"],
    )
    leak = find_leakage(data)
    pairs = {(p["split"], p["earlier"]): p for p in leak.pairs}
    assert (pairs["val", "train"]["exact"], pairs["val", "train"]["near"]) == (1, 0)
    assert (pairs["test", "train"]["exact"], pairs["test", "train"]["near"]) == (1, 1)
    assert (pairs["test", "val"]["exact"], pairs["test", "val"]["near"]) == (1, 0)
    assert pairs["val", "train"]["tasks"]["odd"] == {"exact": 1, "near": 0}
    assert pairs["test", "train"]["tasks"]["even"] == {"exact": 1, "near": 1}
    assert sorted(leak.leaked["test"].tolist()) == [36, 37, 38]
    line = leak.line()
    assert line is not None and "1 of 5 val questions in train (1 same text, 0 near)" in line
    assert f"cosine >= {NEAR_COSINE}" in leak.lines()[0]
    clean = deduped(data)
    assert clean.splits["val"].tolist() == [30, 32, 33, 34] and clean.splits["test"].tolist() == [35, 39]
    assert find_leakage(clean).line() is None
    # without texts, identical embeddings are the same question
    bare = RouterData(X, Y, np.ones_like(Y, bool), ["a", "b"], splits, "bare")
    X[32] = X[3]
    assert find_leakage(bare).basis == "embedding"
    assert 32 in find_leakage(bare).leaked["val"].tolist()


def test_scores_out_of_range_and_dedupe_emptying_a_split_are_one_line(tmp_path: Path, capsys) -> None:
    rows = [{"question": f"q{i}", "scores": {"x": 1.5 if i == 3 else 1.0, "y": 0.0}} for i in range(30)]
    (tmp_path / "r.json").write_text(json.dumps(rows))
    np.save(tmp_path / "e.npy", np.zeros((30, 4), np.float32))
    assert main(["data", "describe", str(tmp_path / "r.json"), "--embeddings", str(tmp_path / "e.npy")]) == 2
    assert "record 3: score of 'x' 1.5 is not a score in [0, 1]" in capsys.readouterr().err
    same = [{"question": "same", "scores": {"x": float(i % 2), "y": 0.0}} for i in range(30)]
    (tmp_path / "s.json").write_text(json.dumps(same))
    rc = main(
        ["data", "describe", str(tmp_path / "s.json"), "--embeddings", str(tmp_path / "e.npy"), "--dedupe"]
    )
    assert rc == 2 and "--dedupe would leave no val questions" in capsys.readouterr().err


def test_convert_keeps_grades_and_tasks(tmp_path: Path) -> None:
    path = _records(tmp_path, "r", "mc", 120, 4, graded=True)
    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(4).normal(size=(120, 4)).astype(np.float32))
    assert main(["data", "convert", str(path), str(tmp_path / "layout"), "--embeddings", str(emb)]) == 0
    before = load_data(path, embeddings=str(emb))
    after = load_data(tmp_path / "layout")
    np.testing.assert_allclose(after.Y[after.mask], before.Y[before.mask])  # the grades, not 0/1
    assert after.task_names == before.task_names
    assert before.tasks is not None and after.tasks is not None
    for split in ("train", "val", "test"):
        idx = before.splits[split]
        np.testing.assert_array_equal(after.tasks[idx], before.tasks[idx])
