from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from search.data import load_data, write_parquet_layout
from search.errors import DataError
from tests.conftest import MMLU, write_embedllm


def test_load_embedllm_folder(embedllm_dir: Path) -> None:
    data = load_data(embedllm_dir)
    assert data.X.shape == (60, 8) and data.X.dtype == np.float32
    assert data.Y.shape == (60, 4) and data.mask.all()
    assert data.model_names == ["llm-0", "llm-1", "llm-2", "llm-3"]
    assert sorted(np.concatenate(list(data.splits.values())).tolist()) == list(range(60))
    assert set(np.unique(data.Y)) <= {0.0, 1.0}


def test_without_model_order_takes_names_from_rows(tmp_path: Path) -> None:
    data = load_data(write_embedllm(tmp_path / "d", order=False))
    assert data.model_names == ["llm-0", "llm-1", "llm-2", "llm-3"]


def test_parquet_and_npy_round_trip(embedllm_dir: Path, tmp_path: Path) -> None:
    data = load_data(embedllm_dir)
    write_parquet_layout(data, tmp_path / "pq")
    assert (tmp_path / "pq" / "train.parquet").exists()
    assert (tmp_path / "pq" / "question_embeddings.npy").exists()
    back = load_data(tmp_path / "pq")
    assert np.array_equal(back.X, data.X) and np.array_equal(back.Y, data.Y)
    assert np.array_equal(back.mask, data.mask) and back.model_names == data.model_names
    for s in data.splits:
        assert np.array_equal(back.splits[s], data.splits[s])


def test_missing_pairs_are_masked(embedllm_dir: Path) -> None:
    path = embedllm_dir / "train.csv"
    lines = path.read_text().splitlines()
    dropped = lines.pop(1)
    path.write_text("\n".join(lines) + "\n")
    q, m = (int(v) for v in dropped.split(",")[:2])
    data = load_data(embedllm_dir)
    assert not data.mask[q, m] and data.mask.sum() == 60 * 4 - 1


def test_synthetic_is_deterministic_and_structured() -> None:
    a = load_data("synthetic:n_questions=300,n_models=8,dim=32,seed=5")
    b = load_data("synthetic:n_questions=300,n_models=8,dim=32,seed=5")
    c = load_data("synthetic:n_questions=300,n_models=8,dim=32,seed=6")
    assert np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y)
    assert not np.array_equal(a.Y, c.Y)
    assert a.X.shape == (300, 32) and a.Y.shape == (300, 8)
    assert [len(a.splits[s]) for s in ("train", "val", "test")] == [240, 30, 30]


def test_synthetic_default_is_embedllm_shaped() -> None:
    data = load_data(None)
    assert data.num_models == 112 and data.embedding_dim == 768


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:n_models=1", "synthetic n_models must be an integer from 2 to 100,000, got 1"),
        ("synthetic:colour=3", "bad setting 'colour=3'; valid: n_questions"),
        ("synthetic:seed=x", "seed='x' is not a number"),
    ],
)
def test_synthetic_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_data(spec)


def _edit(folder: Path, name: str, line: int, new: str) -> None:
    lines = (folder / name).read_text().splitlines()
    lines[line - 1] = new
    (folder / name).write_text("\n".join(lines) + "\n")


def test_missing_file(embedllm_dir: Path) -> None:
    (embedllm_dir / "val.csv").unlink()
    with pytest.raises(DataError, match=r"val.csv: file not found \(nor val.parquet\)"):
        load_data(embedllm_dir)


def test_missing_embeddings(embedllm_dir: Path) -> None:
    (embedllm_dir / "question_embeddings.pth").unlink()
    with pytest.raises(DataError, match=r"question_embeddings.pth: file not found"):
        load_data(embedllm_dir)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        load_data(tmp_path / "nope")


def test_prompt_id_outside_embeddings(embedllm_dir: Path) -> None:
    _edit(embedllm_dir, "train.csv", 3, "999,1,0,1,llm-1,math")
    with pytest.raises(
        DataError, match=r"train.csv line 3: prompt_id 999 is outside question_embeddings.pth"
    ):
        load_data(embedllm_dir)


def test_label_not_binary(embedllm_dir: Path) -> None:
    line = (embedllm_dir / "test.csv").read_text().splitlines()[4].split(",")
    line[3] = "2"
    _edit(embedllm_dir, "test.csv", 5, ",".join(line))
    with pytest.raises(DataError, match=r"test.csv line 5: label 2 is not a score in \[0, 1\]"):
        load_data(embedllm_dir)


def test_nan_embeddings(embedllm_dir: Path) -> None:
    X = torch.load(embedllm_dir / "question_embeddings.pth", weights_only=True)
    X[7, 2] = float("nan")
    torch.save(X, embedllm_dir / "question_embeddings.pth")
    with pytest.raises(DataError, match=r"question_embeddings.pth row 7 \(prompt_id 7\): NaN or inf"):
        load_data(embedllm_dir)


def test_inf_embeddings_npy(embedllm_dir: Path) -> None:
    X = torch.load(embedllm_dir / "question_embeddings.pth", weights_only=True).numpy()
    X[3, 0] = np.inf
    (embedllm_dir / "question_embeddings.pth").unlink()
    np.save(embedllm_dir / "question_embeddings.npy", X)
    with pytest.raises(DataError, match=r"question_embeddings.npy row 3 .*NaN or inf"):
        load_data(embedllm_dir)


def test_truncated_embeddings(embedllm_dir: Path) -> None:
    path = embedllm_dir / "question_embeddings.pth"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"question_embeddings.pth: not a readable embeddings file"):
        load_data(embedllm_dir)


def test_conflicting_duplicate(embedllm_dir: Path) -> None:
    lines = (embedllm_dir / "train.csv").read_text().splitlines()
    q, m, c, label, *rest = lines[1].split(",")
    lines.append(",".join([q, m, c, str(1 - int(label)), *rest]))
    (embedllm_dir / "train.csv").write_text("\n".join(lines) + "\n")
    n = len(lines)
    with pytest.raises(
        DataError,
        match=rf"train.csv line {n}: \(prompt_id {q}, model_id {m}\) repeats line 2 with a "
        "different label",
    ):
        load_data(embedllm_dir)


def test_identical_duplicate_is_fine(embedllm_dir: Path) -> None:
    lines = (embedllm_dir / "train.csv").read_text().splitlines()
    lines.append(lines[1])
    (embedllm_dir / "train.csv").write_text("\n".join(lines) + "\n")
    assert load_data(embedllm_dir).mask.sum() == 240


def test_empty_split(embedllm_dir: Path) -> None:
    (embedllm_dir / "val.csv").write_text("prompt_id,model_id,category_id,label,model_name,category\n")
    with pytest.raises(DataError, match=r"val.csv: no rows \(the val split is empty\)"):
        load_data(embedllm_dir)


def test_model_id_not_in_model_order(embedllm_dir: Path) -> None:
    _edit(embedllm_dir, "train.csv", 2, "0,9,0,1,llm-9,math")
    with pytest.raises(
        DataError, match=r"train.csv line 2: model_id 9 not in model_order.csv \(valid 0..3\)"
    ):
        load_data(embedllm_dir)


def test_model_name_disagrees_with_model_order(embedllm_dir: Path) -> None:
    (embedllm_dir / "model_order.csv").write_text("model_id,model_name\n0,a\n1,b\n2,c\n3,d\n")
    with pytest.raises(DataError, match=r"model_id 0 is named 'llm-0' but model_order.csv names it 'a'"):
        load_data(embedllm_dir)


def test_missing_column(embedllm_dir: Path) -> None:
    text = (embedllm_dir / "test.csv").read_text().replace("label", "correct", 1)
    (embedllm_dir / "test.csv").write_text(text)
    with pytest.raises(DataError, match=r"test.csv: missing column\(s\) label"):
        load_data(embedllm_dir)


def test_question_in_two_splits(embedllm_dir: Path) -> None:
    first = (embedllm_dir / "train.csv").read_text().splitlines()[1]
    with open(embedllm_dir / "test.csv", "a") as fh:
        fh.write(first + "\n")
    with pytest.raises(DataError, match=r"test.csv: prompt_id \d+ is also in the train split"):
        load_data(embedllm_dir)


def test_embedding_dim_mismatch(embedllm_dir: Path) -> None:
    data = load_data(embedllm_dir)
    with pytest.raises(DataError, match=r"config.json: embedding_dim is 768 but the data .* has 8-d"):
        data.check_embedding_dim(768, "config.json")


def test_builtin_mmlu_pro_loads() -> None:
    data = load_data("mmlu-pro")
    assert data.source == "mmlu-pro" and data.num_models == 29 and data.embedding_dim == 384
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [9625, 1203, 1204]
    assert int(data.mask.sum()) == 347215 and not data.has_costs
    assert data.X.dtype == np.float32


@pytest.mark.skipif(not MMLU.is_dir(), reason="shared MMLU-Pro folder absent")
def test_builtin_mmlu_pro_is_the_shared_folder() -> None:
    builtin, folder = load_data("mmlu-pro"), load_data(MMLU)
    assert builtin.model_names == folder.model_names
    assert np.array_equal(builtin.Y, folder.Y) and np.array_equal(builtin.mask, folder.mask)
    assert all(np.array_equal(builtin.splits[s], folder.splits[s]) for s in folder.splits)
    assert float(np.abs(builtin.X - folder.X).max()) < 2e-4  # float16 storage
