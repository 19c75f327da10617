"""Progress a person sees in a log: lines every few seconds while embedding where there is no
terminal, one line before embedding (how many, about how long) or saying the cache served."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from search.data.encode import embed, load_encoder
from search.data.encode import progress as P


def test_lines_say_done_of_total_rate_and_time_left() -> None:
    now = [0.0]
    p = P.Progress(1000, "embedding", every_s=5.0, clock=lambda: now[0])
    now[0] = 2.0
    p.update(100)  # too soon: nothing said
    now[0] = 10.0
    p.update(200)
    now[0] = 12.0
    p.update(300)  # 2 s after the last line: nothing
    now[0] = 50.0
    p.update(1000)  # done: always said
    assert p.lines == [
        "embedding: 200 of 1,000 texts (20%), 20.0 texts/s, about 40 s left",
        "embedding: 1,000 of 1,000 texts (100%), 20.0 texts/s, done in 50 s",
    ]
    assert [P.duration(s) for s in (0.4, 59, 446, 3780)] == ["0 s", "59 s", "7 min 26 s", "1 h 03 min"]
    with pytest.raises(ValueError, match="need total >= 0"):
        P.Progress(-1)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from tests.search.encoders import make_encoder

    folder = make_encoder(tmp_path_factory.mktemp("enc"), seed=0, dim=16, max_seq_length=16)
    return load_encoder(str(folder), "{prompt}")


def _texts(n: int) -> list[str]:
    words = ["what", "is", "the", "sum", "of", "a", "capital", "france", "poem", "write", "code"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, 1 + i % 7)) for i in range(n)]


def test_embedding_without_a_terminal_logs_lines_and_gives_the_same_embeddings(
    encoder, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(P, "EVERY_S", 0.0)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)  # a log file, not a terminal
    texts = _texts(300)
    plain = encoder.encode(texts, progress=False)  # one call, no lines
    with caplog.at_level(logging.INFO, logger="search"):
        logged = encoder.encode(texts)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("embedding with")]
    assert (
        len(lines) == -(-300 // 128)
        and lines[-1].startswith("embedding with")
        and "300 of 300 texts" in lines[-1]
    )
    assert "of 300 texts" in lines[0] and "texts/s, about" in lines[0]
    np.testing.assert_allclose(logged, plain, rtol=1e-5, atol=1e-6)


def test_embed_says_it_must_embed_with_an_estimate_or_that_the_cache_served(
    encoder, monkeypatch, tmp_path: Path, caplog
) -> None:
    monkeypatch.setenv("RS_CACHE_DIR", str(tmp_path / "cache"))
    texts = _texts(260)
    with caplog.at_level(logging.INFO, logger="search"):
        X, cached = embed(texts, encoder)
    first = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("embedding 260"))
    assert not cached and "(not in the cache): about" in first and "texts/s on this machine" in first
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="search"):
        again, cached = embed(texts, encoder)
    assert cached and np.array_equal(again, X)
    assert any(
        "embeddings of 260 texts by" in r.getMessage() and "from the cache" in r.getMessage()
        for r in caplog.records
    )
