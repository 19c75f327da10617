"""Trainer speed and quality, in one process.

1. Epoch time of train_router vs a reference loop (DataLoader over a TensorDataset, per-batch
   .to(device)), same data, config, device and batch size; prints the ratio.
2. Achieved training FLOP/s of the model vs a plain matmul's FLOP/s; prints the ratio.
3. Test metrics of a default mlp config on the MMLU-Pro folder vs its README's reference routers.

    python bench/trainer.py [--device cpu|cuda] [--epochs 3] [--data synthetic:...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from router_models import create_model
from search import metrics as M
from search.data import load_data
from search.routing.inference import split_metrics
from search.trial.train import train_router

MMLU = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu_pro" / "embedllm"
CONFIG = {
    "pipeline_config": {
        "model_type": "mlp",
        "model_config": {"hidden_dims": [512, 256], "dropout": 0.1, "activation": "relu"},
        "train_config": {"lr": 1e-3, "weight_decay": 1e-2, "batch_size": 256, "epochs": 3},
    }
}
# The README's reference routers on the MMLU-Pro test split.
REFERENCE = {
    "single best": (0.7049, None),
    "kNN k=131": (0.7209, 0.6758),
    "oracle": (0.9510, None),
}


def reference_epoch_time(data, device: torch.device, epochs: int, batch_size: int) -> float:
    """Seconds per epoch of a DataLoader loop in the usual style."""
    X, Y, mask = (torch.from_numpy(a) for a in data.split("train"))
    model = create_model(CONFIG, data.embedding_dim, data.num_models).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    loader = DataLoader(TensorDataset(X, Y, mask), batch_size=batch_size, shuffle=True)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb, mb in loader:
            xb, yb, mb = xb.to(device), yb.to(device), mb.to(device)
            loss = M.masked_bce(model(xb), yb, mb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[1:] or times)


def ours_epoch_time(data, device: torch.device, epochs: int) -> tuple[float, int]:
    stamps: list[float] = []

    def report(_rep):
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return ()

    t0 = time.perf_counter()
    res = train_router(CONFIG, data, device=device, epochs=epochs, report=report)
    # Each stamp includes the per-epoch validation pass, as a real run does.
    deltas = [b - a for a, b in zip([t0, *stamps[:-1]], stamps)]
    weights = sum(p.numel() for n, p in res.model.named_parameters() if p.dim() == 2)
    return min(deltas[1:] or deltas), weights


def matmul_flops(
    device: torch.device, n: int = 1024, reps: int = 20, dtype: torch.dtype = torch.float32
) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", default="synthetic:n_questions=20000")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = load_data(args.data)
    n_train = len(data.splits["train"])
    print(f"device {device}, threads {torch.get_num_threads()}, data {data.source}")
    print(f"train rows {n_train}, config mlp {CONFIG['pipeline_config']['model_config']['hidden_dims']}")

    ref = reference_epoch_time(data, device, args.epochs, 256)
    ours, weights = ours_epoch_time(data, device, args.epochs)
    print(
        f"epoch time: ours {ours:.3f}s (incl. val pass), DataLoader loop {ref:.3f}s "
        f"-> speedup {ref / ours:.2f}x"
    )
    model_flops = 6 * weights * n_train / ours  # forward 2, backward 4 per weight and row
    peak = matmul_flops(device)
    print(
        f"model {model_flops / 1e9:.1f} GFLOP/s vs matmul {peak / 1e9:.1f} GFLOP/s "
        f"-> {model_flops / peak:.2f} of matmul"
    )

    if args.skip_quality or not MMLU.is_dir():
        print("quality: skipped (no MMLU-Pro folder)" if not args.skip_quality else "")
        return
    mmlu = load_data(MMLU)
    cfg = {
        "pipeline_config": {
            "model_type": "mlp",
            "model_config": {"hidden_dims": [256], "dropout": 0.3, "activation": "relu"},
            "train_config": {"lr": 3e-4, "weight_decay": 1e-2, "batch_size": 256, "epochs": 30},
        }
    }
    res = train_router(cfg, mmlu, device=device, metric="val_route_acc")
    test = split_metrics(res.model, mmlu, "test")
    print(f"MMLU-Pro test, mlp [256] dropout 0.3 lr 3e-4 (best epoch {res.best_epoch} by val route):")
    print(f"  ours          route {test['route_acc']:.4f}  correctness {test['correctness_acc']:.4f}")
    for name, (route, corr) in REFERENCE.items():
        c = f"{corr:.4f}" if corr is not None else "  -   "
        print(f"  {name:<13} route {route:.4f}  correctness {c}")


if __name__ == "__main__":
    main()
