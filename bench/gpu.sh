#!/usr/bin/env bash
# GPU benchmark, for a machine with one CUDA GPU; about 8 minutes. From the repository root,
# with the project importable: bash bench/gpu.sh
#  1. packs on the trainer alone (no Ray): member-epochs per second for K = 1 to 256, members
#     of the default space padded to the widest (what a GPU search packs), each with its
#     useful GFLOP/s (padding excluded) as a share of the chip's measured fp32 and bf16 matmul
#     rates; then with one set of widths per pack;
#  2. the default search through Ray: trials per minute of unpacked trials at gpu 1.0, 0.25
#     and 0.125 (1, 4 and 8 sharing the GPU) vs one pack of 16 or 32 at gpu 1.0, and peak GPU
#     memory per trial or per pack member;
#  3. the trainer's epoch time vs a DataLoader loop, and FLOP/s vs a matmul, on the GPU;
#  4. the stock peer (Ray Tune + OptunaSearch + ASHA) at gpu 0.25, four sharing the GPU, against
#     our packs of 64 with the whole GPU, with and without refill: wall and time to the peer's
#     best val.
# Each step runs even if one before it failed; the script fails if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
step() {
  echo "== $*"
  "$@" || { echo "!! failed: $*"; status=1; }
}
step python bench/packing.py --sweep --device cuda --sizes 1,16,64,256 --pad --epochs 4
step python bench/packing.py --sweep --device cuda --sizes 8,32 --epochs 4
step python bench/packing.py --gpu-compare --sizes 16,32
step python bench/trainer.py --device cuda --skip-quality
step python bench/peer.py --gpu --trials 128 --pack-sizes 64 --variants today,refill
exit $status
