"""The cost of ``--mlflow`` on the default search: its wall with and without tracking into a
file store, in one process, alternating (the search is reproducible: both sides train the same
trials), and how many trials the store holds after.

    python bench/tracking.py [--repeats 2] [--space spaces/residual.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT

import search


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    args = p.parse_args()
    walls: dict[str, list[float]] = {"without": [], "with --mlflow": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for side in walls:
                out, store = Path(tmp) / f"run-{rep}-{len(side)}", Path(tmp) / f"mlruns-{rep}"
                t = time.perf_counter()
                search.run(
                    args.space,
                    out=out,
                    export=out / "export.json",
                    quiet=True,
                    mlflow=str(store) if side != "without" else None,
                )
                walls[side].append(time.perf_counter() - t)
                print(f"{side:>14}: {walls[side][-1]:.1f}s", flush=True)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=(Path(tmp) / "mlruns-0").resolve().as_uri())
        (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
    base, tracked = statistics.median(walls["without"]), statistics.median(walls["with --mlflow"])
    print(
        f"median wall {base:.1f}s without, {tracked:.1f}s with --mlflow: {tracked / base - 1:+.1%} "
        f"({len(runs)} MLflow runs in the store: the search's and one per trial)"
    )


if __name__ == "__main__":
    main()
