"""Quality on real data: a search on the MMLU-Pro folder, then its routers (the best trial and
the ensemble, each with its val-tuned switching margin) against the single best model, the kNN
router (k tuned on val) and the oracle on the test split, with paired bootstrap intervals; the
recommended router (chosen on val) against the targets; with tasks, routing per task; the
trials completed per model type.

    python bench/quality.py [--space spaces/routers.yaml] [--trials N] [--metric val_auc]
                            [--data SRC] [DATA OPTIONS] [--no-reproducible]

Any source works (``--data`` as for ``search run``, with the same data options); the targets
are the built-in MMLU-Pro's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, load_yaml, run_search, write_yaml

from search.cli.data_args import add_data_options
from search.data import load_data
from search.data.options import data_options
from search.data.parts import data_source
from search.results.export import routers_of
from search.results.routing_table import run_routing_table

TARGET_ROUTING = 0.7218  # tuned kNN, the folder README
TARGET_CORRECTNESS = 0.69


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", default=str(ROOT / "spaces" / "routers.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--metric")
    p.add_argument("--no-reproducible", action="store_true", help="ask and tell as results come in")
    add_data_options(p)
    args = p.parse_args()
    args.data = args.data or ["mmlu-pro"]
    spec, options = data_source(args.data), data_options(args)
    raw = load_yaml(Path(args.space))
    raw["search"]["reproducible"] = not args.no_reproducible
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    if args.metric:
        raw["search"]["metric"] = args.metric
    data = load_data(spec, options)
    given = _options(args)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_yaml(Path(tmp) / "quality.yaml", raw)
        start = time.perf_counter()
        rc, wall, rows = run_search(path, Path(tmp) / "run", **given)
        assert rc == 0
        states = [r["state"] for r in rows]
        types = sorted({r["model_type"] for r in rows})
        print(
            f"search: {len(rows)} trials of {', '.join(types)} ({states.count('PRUNED')} pruned) "
            f"in {wall:.0f}s, metric {raw['search']['metric']}"
        )
        for t in types:
            of = [r["state"] for r in rows if r["model_type"] == t]
            print(f"  {t}: {len(of)} trials, {of.count('COMPLETE')} complete, {of.count('PRUNED')} pruned")
        config = json.loads((Path(tmp) / "run" / "config.json").read_text())
        table = run_routing_table(routers_of(Path(tmp) / "run", config), data)
        print(f"({time.perf_counter() - start:.0f}s in all)")
    print(table.text)
    rec = next(r for r in table.rows if r["router"] == table.recommended)
    knn = rec["vs_knn"]
    print(
        f"target: recommended router test routing {rec['route_acc']:.4f} (target >= {TARGET_ROUTING}: "
        f"{'met' if rec['route_acc'] >= TARGET_ROUTING else 'missed'}; vs kNN {100 * knn['difference']:+.2f} "
        f"[{100 * knn['low']:+.2f}, {100 * knn['high']:+.2f}] points, {knn['verdict']}), correctness "
        f"{rec['correctness_acc']:.4f} (target >= {TARGET_CORRECTNESS}: "
        f"{'met' if rec['correctness_acc'] >= TARGET_CORRECTNESS else 'missed'})"
    )


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options again, as ``search.run``'s arguments."""
    names = ("embeddings", "align", "id_column", "threshold", "split_seed", "encoder", "template")
    names += ("task_column",)
    out: dict[str, Any] = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    out["data"] = list(args.data)
    if args.metric_rule:
        out["metric_rule"] = list(args.metric_rule)
    if args.dedupe:
        out["dedupe"] = True
    return out


if __name__ == "__main__":
    main()
