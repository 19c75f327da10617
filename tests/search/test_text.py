"""Text in: templates, encoders found locally and identified, the embedding cache, sources with
texts, split files with tasks, data embed and describe (no Ray here)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from search.__main__ import main
from search.data import load_data
from search.data.encode import EncoderIdentity, Template, embed, find_encoder, load_encoder
from search.data.encode.cache import cache_dir
from search.data.encode.encoder import Encoder, files_hash
from search.errors import DataError, UserError
from tests.search.encoders import WORDS, make_encoder

pytest.importorskip("sentence_transformers", reason="the text extra (sentence-transformers) is not installed")

TOPICS = {"capital": "llm-a", "derivative": "llm-b", "poem": "llm-c"}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return {
        "a": make_encoder(root / "a", seed=0, dim=16),
        "b": make_encoder(root / "b", seed=1, dim=16),  # same shape, other weights
        "wide": make_encoder(root / "wide", seed=2, dim=24),
    }


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("RS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hub"))
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path / "no-st"))
    return tmp_path / "cache"


def records(
    n: int = 60, seed: int = 0, llms: tuple[str, ...] = ("llm-a", "llm-b", "llm-c"), split: bool = True
) -> list[dict]:
    """Questions whose topic decides which LLM answers them."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        topic = list(TOPICS)[i % 3]
        words = " ".join(rng.choice(WORDS, size=3))
        scores = {m: int(m == TOPICS[topic] or rng.random() < 0.2) for m in llms}
        r = {"id": i, "question": f"{topic} {words} {i}?", "options": ["yes", "no"], "scores": scores}
        if split:
            r["split"] = ["train", "train", "train", "val", "test"][i % 5]
        out.append(r)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def count_encodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = Encoder.encode

    def counted(self, texts, *a, **kw):
        calls.append(len(texts))
        return real(self, texts, *a, **kw)

    monkeypatch.setattr(Encoder, "encode", counted)
    return calls


def test_templates_render_records_and_refuse_bad_ones() -> None:
    t = Template("{question}\n{options:lettered}")
    assert t.fields == ["question", "options"]
    assert t.render({"question": "2+2?", "options": ["3", "4"]}, "r") == "2+2?\nA. 3\nB. 4"
    assert (
        t.render({"question": "q", "options": '["x", "y"]'}, "r") == "q\nA. x\nB. y"
    )  # a JSON text of a list
    with pytest.raises(DataError, match=r"r: no 'options' field, which the template"):
        t.render({"question": "q"}, "r")
    with pytest.raises(DataError, match="'options' is int, not a list to letter"):
        t.render({"question": "q", "options": 3}, "r")
    for bad in ("{question!r}", "{question:upper}", "no fields", "{0}", "{q"):
        with pytest.raises(DataError, match="template"):
            Template(bad)


def test_an_encoder_is_found_locally_identified_by_content_and_never_downloaded(encoders, tmp_path) -> None:
    path, name = find_encoder(str(encoders["a"]))
    assert path == encoders["a"].resolve() and name == str(path)
    copy = tmp_path / "elsewhere"
    shutil.copytree(encoders["a"], copy)
    assert files_hash(copy) == files_hash(encoders["a"]) != files_hash(encoders["b"])
    a = load_encoder(str(encoders["a"]), "{question}").identity
    assert (a.dim, a.pooling, a.normalize, a.max_seq_length) == (16, "mean", True, 64)
    assert a.mismatch(load_encoder(str(copy), "{question}").identity) is None  # a copy is the same
    assert "sha256" in str(a.mismatch(load_encoder(str(encoders["b"]), "{question}").identity))
    assert "template" in str(a.mismatch(load_encoder(str(copy), "{prompt}").identity))
    start = time.monotonic()
    with pytest.raises(UserError) as caught:
        find_encoder("sentence-transformers/not-a-real-model")
    assert time.monotonic() - start < 1.0
    message = str(caught.value)
    assert "not found on this machine (looked in" in message and str(tmp_path / "no-hub") in message
    assert "nothing is downloaded" in message and "\n" not in message


def test_a_name_is_found_in_the_hub_cache(encoders, tmp_path, monkeypatch) -> None:
    hub = tmp_path / "hub"
    snapshot = hub / "models--acme--tiny" / "snapshots" / "abc123"
    shutil.copytree(encoders["a"], snapshot)
    (hub / "models--acme--tiny" / "refs").mkdir()
    (hub / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert find_encoder("acme/tiny") == (snapshot, "acme/tiny")
    assert load_encoder("acme/tiny", "{question}").identity.name == "acme/tiny"


def test_without_the_text_extra_a_text_feature_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(UserError, match=r'encoders need sentence-transformers: pip install -e "\.\[text\]"'):
        load_encoder("anything", "{question}")


def test_the_cache_embeds_once_and_again_on_any_change(encoders, tmp_path, monkeypatch, own_cache) -> None:
    calls = count_encodes(monkeypatch)
    path = write_jsonl(tmp_path / "r.jsonl", records())
    first = load_data(path, encoder=str(encoders["a"]))
    assert calls == [60] and first.X.shape == (60, 16) and first.encoder["template"] == "{question}"
    again = load_data(path, encoder=str(encoders["a"]))
    assert calls == [60] and np.array_equal(again.X, first.X)  # a second run embeds nothing
    assert len(list(own_cache.glob("*.npy"))) == 1
    load_data(path, encoder=str(encoders["b"]))  # another encoder
    load_data(path, encoder=str(encoders["a"]), template="{question}\n{options:lettered}")  # another template
    edited = records()
    edited[7]["question"] += " changed"
    load_data(write_jsonl(tmp_path / "e.jsonl", edited), encoder=str(encoders["a"]))  # one text changed
    assert calls == [60, 60, 60, 60]
    copy = tmp_path / "copy"
    shutil.copytree(encoders["a"], copy)
    load_data(path, encoder=str(copy))  # the same encoder elsewhere: the cache hits
    assert calls == [60, 60, 60, 60] and cache_dir() == own_cache


def test_embedding_batches_agree_with_one_by_one(encoders) -> None:
    encoder = load_encoder(str(encoders["a"]), "{question}")
    texts = [r["question"] for r in records(20)]
    X, hit = embed(texts, encoder)
    one = np.stack([encoder.encode([t])[0] for t in texts[:5]])
    assert not hit and np.allclose(X[:5], one, atol=1e-5)  # batched by length, order kept


def test_sources_with_texts_need_an_encoder_or_embeddings(encoders, tmp_path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", records())
    with pytest.raises(
        DataError, match=r"r.jsonl: holds no embeddings; give --embeddings FILE .* or --encoder NAME\|PATH"
    ):
        load_data(path)
    wrong = tmp_path / "e8.npy"
    np.save(wrong, np.ones((60, 8), dtype=np.float32))
    with pytest.raises(DataError, match=r"e8.npy: 8-d embeddings, but encoder .* makes 16-d ones"):
        load_data(path, embeddings=str(wrong), encoder=str(encoders["a"]))
    table = tmp_path / "w.csv"
    rows = records()
    lines = ["prompt,llm-a,llm-b,split"] + [
        f'"{r["question"]}",{r["scores"]["llm-a"]},{r["scores"]["llm-b"]},{r["split"]}' for r in rows
    ]
    table.write_text("\n".join(lines) + "\n")
    data = load_data(table, encoder=str(encoders["a"]))
    assert data.texts[0] == rows[0]["question"] and data.encoder["template"] == "{prompt}"


def test_data_embed_writes_embeddings_that_know_their_encoder(encoders, tmp_path, capsys) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", records())
    out = tmp_path / "emb.npy"
    assert main(["data", "embed", str(path), str(out), "--encoder", str(encoders["a"])]) == 0
    assert "wrote" in capsys.readouterr().out
    made_by = json.loads((tmp_path / "emb.npy.encoder.json").read_text())
    data = load_data(path, embeddings=str(out))  # no --encoder: the file says who made it
    assert data.encoder == made_by and np.load(out).shape == (60, 16)
    assert main(["data", "embed", str(path), str(tmp_path / "b.npy"), "--encoder", str(encoders["b"])]) == 0
    capsys.readouterr()
    # a file made by encoder b is not encoder a's
    assert (
        main(
            [
                "data",
                "describe",
                str(path),
                "--embeddings",
                str(tmp_path / "b.npy"),
                "--encoder",
                str(encoders["a"]),
            ]
        )
        == 2
    )
    assert "b.npy: made by" in capsys.readouterr().err
    assert main(["data", "embed", str(path), str(tmp_path / "x.npy")]) == 2
    assert "give --encoder NAME|PATH" in capsys.readouterr().err


def test_split_files_keep_their_task_and_join_their_llms(encoders, tmp_path, capsys) -> None:
    parts = {
        "train": [
            write_jsonl(tmp_path / "math_train.jsonl", records(40, 1, ("llm-a", "llm-b"), split=False)),
            write_jsonl(tmp_path / "poems_train.jsonl", records(40, 2, ("llm-b", "llm-c"), split=False)),
        ],
        "test": [
            write_jsonl(tmp_path / "math_test.jsonl", records(10, 3, ("llm-a", "llm-b"), split=False)),
            write_jsonl(tmp_path / "poems_test.jsonl", records(10, 4, ("llm-b", "llm-c"), split=False)),
        ],
    }
    data = load_data({s: [str(p) for p in ps] for s, ps in parts.items()}, encoder=str(encoders["a"]))
    assert data.model_names == ["llm-a", "llm-b", "llm-c"] and data.task_names == ["math", "poems"]
    assert not data.mask[:40, 2].any() and not data.mask[40:80, 0].any()  # pairs a file does not score
    assert len(data.splits["val"]) == 8 and len(data.splits["train"]) == 72  # 10% of train is val
    assert len(data.splits["test"]) == 20 and set(data.tasks[data.splits["test"]]) == {0, 1}
    argv = [
        "data",
        "describe",
        *(f"{s}={p}" for s, ps in parts.items() for p in ps),
        "--encoder",
        str(encoders["a"]),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tasks: 2; routing per task on test (mean score of the chosen LLM):" in out
    assert "math" in out and "poems" in out and "single best" in out
    assert main(["data", "describe", "train=a.json", "mmlu-pro"]) == 2
    assert "give one source, or parts as split=FILE" in capsys.readouterr().err


def test_a_space_gives_the_same_data_options(encoders, tmp_path) -> None:
    from search.space import parse_space
    from tests.search.spaces import tiny_space

    def space_of(data: dict):
        raw = tiny_space()
        raw["data"] = data
        return parse_space(raw)

    path = write_jsonl(tmp_path / "r.jsonl", records())
    space = space_of({"path": str(path), "encoder": str(encoders["a"]), "template": "{question}"})
    data = load_data(space.data.source(), space.data.options())
    assert data.encoder["name"] == str(encoders["a"].resolve())
    split = space_of({"train": [str(path)], "test": str(path), "encoder": {"choices": ["x", "y"]}})
    assert split.data.source() == {"train": [str(path)], "test": [str(path)]}
    assert split.data.encoders == ["x", "y"]


def test_describe_says_what_made_the_embeddings(encoders, tmp_path, capsys) -> None:
    assert main(["data", "describe", "mmlu-pro"]) == 0
    out = capsys.readouterr().out
    assert "texts: 12,032, as embedded with the template '{question}\\n{options:lettered}'" in out
    assert "embeddings: 384-d by sentence-transformers/all-MiniLM-L6-v2 (mean pooling, normalized" in out
    assert main(["data", "describe", "synthetic:n_questions=60"]) == 0
    out = capsys.readouterr().out
    assert "texts: none (embeddings only)" in out and "precomputed by an encoder nobody recorded" in out


def test_identity_records_round_trip() -> None:
    identity = EncoderIdentity("n", "ab" * 32, "mean", True, 128, 16, "{question}")
    assert EncoderIdentity.from_dict(identity.to_dict(), "x") == identity
    with pytest.raises(UserError, match="x: not an encoder identity"):
        EncoderIdentity.from_dict({**identity.to_dict(), "dim": "16"}, "x")


def test_a_copy_with_another_config_is_another_encoder_and_cannot_poison_the_cache(
    encoders, tmp_path, monkeypatch, own_cache
) -> None:
    calls = count_encodes(monkeypatch)
    path = write_jsonl(tmp_path / "r.jsonl", records())
    genuine = load_data(path, encoder=str(encoders["a"]))
    copy = tmp_path / "copy"
    shutil.copytree(encoders["a"], copy)
    config = json.loads((copy / "config.json").read_text())
    config["num_hidden_layers"], config["hidden_act"] = 0, "relu"  # the same weights, another model
    (copy / "config.json").write_text(json.dumps(config))
    a = load_encoder(str(encoders["a"]), "{question}").identity
    b = load_encoder(str(copy), "{question}").identity
    assert a.sha256 == b.sha256 and a.config_sha256 != b.config_sha256
    assert a.mismatch(b).startswith("config_sha256")
    load_data(path, encoder=str(copy))  # its own entry
    again = load_data(path, encoder=str(encoders["a"]))
    assert calls == [60, 60] and np.array_equal(again.X, genuine.X)  # the genuine one's, from cache
    # an identity recorded before configs were hashed is compared without them
    old = EncoderIdentity.from_dict({k: v for k, v in a.to_dict().items() if k != "config_sha256"}, "old")
    assert old.config_sha256 == "" and old.mismatch(b) is None
    # a config that asks for more tokens than the model has positions: one line at load
    (copy / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 512, "do_lower_case": False})
    )
    with pytest.raises(UserError, match="max_seq_length 512 .* is more than the model's 128 positions"):
        load_encoder(str(copy), "{question}")


def test_damaged_foreign_and_hostile_cache_entries_are_embedded_again(
    encoders, tmp_path, monkeypatch, own_cache
) -> None:
    import os

    calls = count_encodes(monkeypatch)
    path = write_jsonl(tmp_path / "r.jsonl", records())
    first = load_data(path, encoder=str(encoders["a"]))
    (entry,) = own_cache.glob("*.npy")
    # a header that claims 10^9 rows: refused before anything is allocated
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 16), np.float32))
    header["shape"] = (10**9, 16)
    with open(entry, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 64)
    again = load_data(path, encoder=str(encoders["a"]))
    assert calls == [60, 60] and np.array_equal(again.X, first.X)
    # another set's embeddings of the same shape copied over the entry: the hash tells
    np.save(entry, np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32))
    again = load_data(path, encoder=str(encoders["a"]))
    assert calls == [60, 60, 60] and np.array_equal(again.X, first.X)
    # a FIFO at the entry's path would block a read: it is passed over, at once
    entry.unlink()
    os.mkfifo(entry)
    start = time.monotonic()
    again = load_data(path, encoder=str(encoders["a"]))
    assert calls == [60, 60, 60, 60] and time.monotonic() - start < 30 and np.array_equal(again.X, first.X)


class _Custom:  # a pickled object torch's safe loader refuses
    pass


def test_an_encoder_whose_weights_need_code_is_refused_without_unsafe_advice(encoders, tmp_path) -> None:
    import torch

    folder = tmp_path / "pickled"
    shutil.copytree(encoders["a"], folder)
    (folder / "model.safetensors").unlink()
    torch.save({"embeddings.word_embeddings.weight": _Custom()}, folder / "pytorch_model.bin")
    with pytest.raises(UserError) as info:
        load_encoder(str(folder), "{question}")
    message = str(info.value)
    assert "does not load as a sentence-transformers model" in message and "\n" not in message
    assert "weights_only" not in message
