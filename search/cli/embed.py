"""``search data embed SRC OUT.npy --encoder E``: a source's texts embedded once, for reuse.

Writes OUT.npy (float32, one row per question in the source's order; for a folder, by
prompt_id) and OUT.npy.encoder.json (the encoder's identity), so that ``--embeddings OUT.npy``
later knows which encoder made the file and routers trained on it record that encoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from search.data import load_data
from search.data.data_options import data_options
from search.data.embedding import encoder_file, write_embeddings
from search.data.parts import data_source
from search.errors import UserError
from search.files.paths import check_file_target


def run_embed(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npy":
        raise UserError(f"data embed OUT {out}: give a .npy file")
    check_file_target(out, "data embed OUT")
    options = data_options(args)
    if options.encoder is None:
        raise UserError(
            "data embed: give --encoder NAME|PATH (a sentence-transformers model on this machine)"
        )
    if options.embeddings is not None:
        raise UserError("data embed: --embeddings gives embeddings already; data embed makes them from texts")
    data = load_data(data_source(args.src), options)
    if data.texts is None or data.encoder is None:
        raise UserError(f"{data.source}: holds no texts to embed")
    write_embeddings(out, data.X, data.encoder)
    print(
        f"wrote {out} ({data.X.shape[0]:,} x {data.X.shape[1]}, float32) and {encoder_file(out).name}: "
        f"{data.encoder['name']}, template {data.encoder['template']!r}"
    )
    return 0
