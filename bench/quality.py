"""Quality on real data: a search on the MMLU-Pro folder, then the best router's test routing
and correctness accuracy vs the single best model, the kNN router (k tuned on val) and the
oracle.

    python bench/quality.py [--space spaces/mlp.yaml] [--trials N] [--metric val_route_acc]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import MMLU, ROOT, load_yaml, run_search, write_yaml

from search.data import load_data
from search.results.baselines import format_table
from search.results.report import run_routing_table


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", default=str(ROOT / "spaces" / "mlp.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--metric")
    p.add_argument("--data", default=str(MMLU))
    args = p.parse_args()
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data}: MMLU-Pro folder not found")
    raw = load_yaml(Path(args.space))
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    if args.metric:
        raw["search"]["metric"] = args.metric
    with tempfile.TemporaryDirectory() as tmp:
        path = write_yaml(Path(tmp) / "quality.yaml", raw)
        rc, wall, rows = run_search(path, Path(tmp) / "run", "--data", args.data)
        assert rc == 0
        states = [r["state"] for r in rows]
        print(
            f"search: {len(rows)} trials ({states.count('PRUNED')} pruned) in {wall:.0f}s, "
            f"metric {raw['search']['metric']}"
        )
        rows_t, _ = run_routing_table(Path(tmp) / "run" / "best_router.pt", load_data(args.data))
    print(format_table(rows_t))
    ours, knn = rows_t[0], rows_t[2]
    print(
        f"vs kNN: routing {100 * (ours['route_acc'] - knn['route_acc']):+.2f} points, "
        f"correctness {100 * (ours['correctness_acc'] - knn['correctness_acc']):+.2f} points"
    )


if __name__ == "__main__":
    main()
