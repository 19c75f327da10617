#!/usr/bin/env bash
# GPU benchmark, for a machine with one CUDA GPU; finishes in about 5 minutes.
#  1. trials per minute of the default search with resources.gpu 1.0, 0.25 and 0.125
#     (1, 4 and 8 trials sharing the GPU), with peak GPU memory per trial;
#  2. the trainer's epoch time vs a DataLoader loop, and FLOP/s vs a matmul, on the GPU.
# Usage: bash bench/gpu.sh   (from the repository root, project installed)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
python - "$out" <<'PY'
import json, sys, time, pathlib, yaml, subprocess
out = pathlib.Path(sys.argv[1])
raw = yaml.safe_load(open("spaces/residual.yaml"))
for frac, n in ((1.0, 8), (0.25, 16), (0.125, 24)):
    raw["resources"] = {"cpu": 0.5, "gpu": frac}
    raw["search"].update(num_samples=n, max_concurrent_trials=int(round(1 / frac)),
                         pruner={"type": "none"})
    path = out / f"gpu{frac}.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = out / f"run{frac}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "search", "run", str(path), "--out", str(run),
                    "--export", str(out / "c.json")], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    import pyarrow.parquet as pq
    rows = pq.read_table(run / "results.parquet").to_pylist()
    devices = sorted({r["device"] for r in rows})
    mem = max((r["gpu_mem_mb"] or 0) for r in rows)
    print(f"gpu {frac}: {n} trials in {wall:.0f}s = {60 * n / wall:.1f} trials/min, "
          f"up to {int(round(1 / frac))} at once, devices {devices}, peak GPU memory per trial "
          f"{mem:.0f} MB")
PY
python bench/trainer.py --device cuda --skip-quality
