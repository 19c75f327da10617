"""What pruning buys: the same search (same space, seeds, trial count) with the space's pruner
and with none; prints the ratio of epochs trained and the differences in best validation metric
and in the best router's test routing accuracy.

    python bench/pruning.py [--space spaces/residual.yaml] [--trials N] [--data SPEC]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import ROOT, load_yaml, run_search, write_yaml

from search import metrics as M
from search.data import load_data
from search.results.routing_table import load_routed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--data")
    args = p.parse_args()
    raw = load_yaml(Path(args.space))
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    extra = {"data": args.data} if args.data else {}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pruner in (
            ("pruned", raw["search"].get("pruner", {"type": "median"})),
            ("unpruned", {"type": "none"}),
        ):
            variant = {**raw, "search": {**raw["search"], "pruner": pruner}}
            path = write_yaml(Path(tmp) / f"{name}.yaml", variant)
            rc, wall, rows = run_search(path, Path(tmp) / name, **extra)
            assert rc == 0, f"{name} search failed"
            run = Path(tmp) / name
            data = load_data(json.loads((run / "run.json").read_text())["data_source"])
            _, y, m = data.split("test")
            best_router = load_routed("best", run / "best_router.pt", data)
            test_route = M.route_acc(best_router.test, y, m, best_router.offsets)
            best = max(r["value"] for r in rows if r["state"] == "COMPLETE")
            epochs = sum(r["epochs_run"] for r in rows)
            states = [r["state"] for r in rows]
            out[name] = (wall, epochs, best, test_route)
            print(
                f"{name:<9} pruner {pruner['type']:<18} wall {wall:6.1f}s  epochs {epochs:4d}  "
                f"pruned {states.count('PRUNED'):2d}/{len(rows)}  best val {best:.4f}  "
                f"test route_acc {test_route:.4f}"
            )
    (w1, e1, b1, r1), (w0, e0, b0, r0) = out["pruned"], out["unpruned"]
    print(f"epochs ratio pruned/unpruned: {e1 / e0:.3f}   wall ratio: {w1 / w0:.3f}")
    print(f"best val metric difference (pruned - unpruned): {b1 - b0:+.4f}")
    print(f"best router test routing accuracy difference: {100 * (r1 - r0):+.2f} points")


if __name__ == "__main__":
    main()
