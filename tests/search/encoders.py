"""A tiny sentence-transformers encoder the tests build themselves (a randomly initialized small
BERT with its own small vocabulary): nothing is downloaded, and it loads in well under a second.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest

WORDS = ["what", "is", "the", "of", "a", "sum", "capital", "france", "derivative", "poem", "write", "code"]


def make_encoder(
    folder: Path, seed: int = 0, dim: int = 16, max_seq_length: int = 64, normalize: bool = True
) -> Path:
    """Build and save a tiny encoder in ``folder``; ``seed`` sets its weights."""
    pytest.importorskip(
        "sentence_transformers", reason="the text extra (sentence-transformers) is not installed"
    )
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizer

    try:  # sentence-transformers 6
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # older releases
        from sentence_transformers import models  # type: ignore[no-redef]

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    hf = folder / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    letters = list(string.ascii_lowercase + string.digits)
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *letters,
        *(f"##{c}" for c in letters),
        *WORDS,
        "?",
        ".",
        ",",
    ]
    (hf / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(hf / "vocab.txt"))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=dim,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * dim,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    modules = [models.Transformer(str(hf), max_seq_length=max_seq_length), models.Pooling(dim, "mean")]
    if normalize:
        modules.append(models.Normalize())
    out = folder / "encoder"
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out
