#!/usr/bin/env bash
# GPU benchmark, for a machine with one CUDA GPU; about 5 minutes. From the repository root,
# with the project importable: bash bench/gpu.sh
#  1. packs on the trainer alone (no Ray): member-epochs per second for K = 1 to 64, members of
#     the default space padded to the widest (what a GPU search packs), then with one set of
#     widths per pack;
#  2. the default search through Ray: trials per minute of unpacked trials at gpu 1.0, 0.25
#     and 0.125 (1, 4 and 8 sharing the GPU) vs one pack of 16 or 32 at gpu 1.0, and peak GPU
#     memory per trial or per pack member;
#  3. the trainer's epoch time vs a DataLoader loop, and FLOP/s vs a matmul, on the GPU.
# Each step runs even if one before it failed; the script fails if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
step() {
  echo "== $*"
  "$@" || { echo "!! failed: $*"; status=1; }
}
step python bench/packing.py --sweep --device cuda --sizes 1,8,16,32,64 --pad --epochs 4
step python bench/packing.py --sweep --device cuda --sizes 8,32 --epochs 4
step python bench/packing.py --gpu-compare --sizes 16,32
step python bench/trainer.py --device cuda --skip-quality
exit $status
