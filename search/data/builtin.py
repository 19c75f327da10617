"""Built-in data sets, shipped inside the package and named on the command line (``--data
mmlu-pro``) or in a space (``data: {path: mmlu-pro}``).

Each carries its embeddings, the identity of the encoder that made them (``encoder.json``) and
the texts they were made from (``texts.parquet``), so its routers can route text: with the same
encoder on this machine, a prompt is embedded as the training questions were.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from search.data.convert import assemble, parse_wide
from search.data.data_options import DataOptions
from search.data.embedding import embeddings_for
from search.data.encode.template import Template
from search.data.router_data import RouterData
from search.data.tables import load_matrix
from search.files.parse import read_json

HERE = Path(__file__).resolve().parent / "builtin"
BUILTIN = {
    # 12,032 MMLU-Pro questions x 29 LLMs, 384-d all-MiniLM-L6-v2 embeddings (float16), EmbedLLM's
    # 80/10/10 split; provenance and licences: builtin/mmlu_pro/PROVENANCE.md
    "mmlu-pro": HERE / "mmlu_pro",
}
ENCODER_FILE = "encoder.json"
TEXTS_FILE = "texts.parquet"


def builtin_encoder(name: str) -> dict | None:
    """The identity of the encoder that made a built-in set's embeddings."""
    path = BUILTIN[name] / ENCODER_FILE
    return read_json(path) if path.is_file() else None


def builtin_texts(name: str, template: str) -> list[str] | None:
    """A built-in set's question texts, by prompt_id, rendered with ``template``."""
    path = BUILTIN[name] / TEXTS_FILE
    if not path.is_file():
        return None
    table = pq.read_table(path)
    order = np.argsort(table.column("prompt_id").to_numpy())
    rows = table.take(order).to_pylist()
    t = Template(template)
    return [t.render(row, f"{path} row {i}") for i, row in enumerate(rows)]


def load_builtin(name: str, options: DataOptions | None = None) -> RouterData:
    """A built-in data set by name (see BUILTIN); ``options.encoder`` of another identity embeds
    its texts with that encoder instead (see ``embedding.py``)."""
    options = options or DataOptions()
    folder = BUILTIN[name]
    own = DataOptions(align="id", id_column="prompt_id", threshold=options.threshold, seed=options.seed)
    parsed = parse_wide(folder / "labels.parquet", own)
    identity = builtin_encoder(name)
    template = options.template or (identity or {}).get("template")
    all_texts = builtin_texts(name, template) if template else None
    assert parsed.ids is not None
    parsed.texts = [all_texts[i] for i in parsed.ids.tolist()] if all_texts is not None else None
    parsed.template = template
    X, encoder = embeddings_for(
        name,
        parsed.n,
        options,
        texts=parsed.texts,
        template=template,
        ids=parsed.ids,
        own=load_matrix(folder / "embeddings.npy")[parsed.ids],
        own_encoder=identity,
    )
    data = assemble(parsed, X, parsed.splits(options.seed), encoder=encoder)
    data.source = name
    return data
