"""Reproducible searches: the same space and seed run twice with ``search.reproducible`` on and
twice with it off; whether each pair gives identical results (trial, state, value, params,
epochs), the best trial and the recommended router of each run, and the wall time of the fixed
order against the free one (ratio in this process).

    python bench/reproducible.py [--space spaces/residual.yaml] [--trials N] [--runs 2] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import ROOT, load_yaml, run_search, write_yaml

VALUE_COLUMNS = ("trial", "state", "value", "epochs_run", "pack", "model_type")


def _key(rows: list[dict]) -> list[tuple]:
    params = sorted(c for c in rows[0] if c not in VALUE_COLUMNS and c.startswith(("params", "mlp.", "mf.")))
    return [tuple(r[c] for c in VALUE_COLUMNS if c in r) + tuple(r[c] for c in params) for r in rows]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--seed", type=int, help="the search's seed (default: the space's)")
    args = p.parse_args()
    raw = load_yaml(Path(args.space))
    if args.seed is not None:
        raw["search"]["seed"] = args.seed
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    walls: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for reproducible in (True, False):
            raw["search"]["reproducible"] = reproducible
            path = write_yaml(Path(tmp) / f"r{int(reproducible)}.yaml", raw)
            seen = []
            for i in range(args.runs):
                run = Path(tmp) / f"run-{int(reproducible)}-{i}"
                rc, wall, rows = run_search(path, run)
                assert rc == 0, f"run failed ({run})"
                walls[reproducible].append(wall)
                routing = json.loads((run / "routing.json").read_text())
                best = json.loads((run / "config.json").read_text())["search_result"]
                seen.append(_key(rows))
                epochs = sum(r["epochs_run"] for r in rows)
                print(
                    f"reproducible={reproducible} run {i + 1}: {wall:.1f}s, {len(rows)} trials, {epochs} "
                    f"epochs, best trial "
                    f"{best['trial']} ({best['metric']} {best['value']:.6f}), recommended "
                    f"{routing['recommended']}",
                    flush=True,
                )
            same = all(s == seen[0] for s in seen[1:])
            differ = next((i for i, (a, b) in enumerate(zip(seen[0], seen[-1])) if a != b), None)
            print(
                f"reproducible={reproducible}: {args.runs} runs identical: {same}"
                + (f" (first difference at row {differ})" if differ is not None else ""),
                flush=True,
            )
    on, off = (min(walls[k]) for k in (True, False))
    print(f"wall, best of {args.runs}: fixed order {on:.1f}s, free {off:.1f}s, ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
