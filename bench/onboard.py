"""Onboarding new LLMs from a few scored questions, by the protocol of the papers that do it, on
the built-in MMLU-Pro set: hold out 6 of the 29 LLMs, search on the other 23, then onboard the
6 held-out LLMs from K scored train questions (K = 16 ... 256), picked by ``search onboard
--suggest`` or at random, and compare on test against

- (a) a router searched with every label of every LLM (the same space, seed and budget);
- (b) kNN over the K scored questions (cosine, k = sqrt(K), each held-out LLM's column);
- (c) each held-out LLM's mean score on its K questions (a constant).

Measured: the held-out LLMs' correctness AUC (mean over the 6) and the routing accuracy of the
whole 29-LLM pool (the other 23 as the 23-LLM router predicts them, with its saved offsets;
a new LLM's offset is 0), with a paired 95% interval of onboarded-suggested against (a) at
K = 64; and the onboarding time per LLM (``search.routing.onboard.onboard_router``, files in,
router out). Targets: at K = 64 (suggested), AUC within 0.02 of (a) and pool routing within
0.5 point of (a); above (b) and (c) at every K; suggested above random at K <= 64.

    python bench/onboard.py [--space spaces/residual.yaml] [--trials N] [--repeats R] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import torch
from common import ROOT, builtin_without, load_yaml, run_search, write_yaml

from router_models.probs import prob_logit
from search import metrics as M
from search.data import load_data
from search.data.data_options import DataOptions
from search.routing.onboard import onboard_router
from search.routing.router import Router
from search.routing.suggest import pick_questions

KS = (16, 32, 64, 128, 256)
HELD_OUT = 6


def _knn(X_fit: np.ndarray, y_fit: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Each query's mean score over its k nearest scored questions (cosine), k = sqrt(K),
    shrunk by one pseudo-vote toward the K questions' mean."""
    k = max(1, round(len(y_fit) ** 0.5))
    a = X / np.linalg.norm(X, axis=1, keepdims=True)
    b = X_fit / np.linalg.norm(X_fit, axis=1, keepdims=True)
    idx = np.argsort(-(a @ b.T), axis=1)[:, :k]
    return (y_fit[idx].sum(1) + y_fit.mean()) / (k + 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--repeats", type=int, default=3, help="draws of the K questions per strategy")
    p.add_argument("--keep", help="keep the runs here")
    args = p.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-onboard-"))
    work.mkdir(parents=True, exist_ok=True)
    data = load_data("mmlu-pro")
    names = data.model_names
    held = sorted(np.random.default_rng(0).choice(len(names), HELD_OUT, replace=False).tolist())
    held_names = [names[j] for j in held]
    print(f"held out: {', '.join(held_names)}")
    raw = load_yaml(Path(args.space))
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    space = write_yaml(work / "space.yaml", raw)

    wall_full = wall_known = 0.0  # runs kept from an earlier call (--keep) are used again
    if not (work / "full" / "results.parquet").exists():
        _, wall_full, _ = run_search(space, work / "full", data="mmlu-pro")
    known_opts = builtin_without(work, held_names, "known")
    given = {k: v for k, v in known_opts.items() if k != "data"}
    if not (work / "known" / "results.parquet").exists():
        _, wall_known, _ = run_search(space, work / "known", data=known_opts["data"], **given)
    print(f"searches: all 29 LLMs {wall_full:.0f} s, the 23 known {wall_known:.0f} s (0: kept from before)")
    chosen = [Router.load(work / n).chosen for n in ("full", "known")]
    print(f"recommended: all 29 {chosen[0]}; the 23 known {chosen[1]}")

    full, known = Router.load(work / "full"), Router.load(work / "known")
    Xtr, Ytr, Mtr = data.split("train")
    Xte, Yte, Mte = data.split("test")
    yt, mt = torch.from_numpy(Yte), torch.from_numpy(Mte)
    order = [known.names.index(n) if n in known.names else None for n in names]
    # each question's task, as a router with a task prior reads it
    task_of = {s: [data.task_names[int(t)] for t in data.split_tasks(s)] for s in ("train", "test")}
    base_te = known.logits(
        Xte, tasks=task_of["test"]
    )  # the 23 known LLMs, as the 23-LLM router predicts them
    base_off = known.offsets

    def pool(
        new_logits: torch.Tensor, new_off: list[float] | None = None
    ) -> tuple[torch.Tensor, list[float]]:
        """29 columns in the data's order: the known router's and the held-out ones given."""
        cols, off = [], []
        for j, i in enumerate(order):
            if i is None:
                k = held.index(j)
                cols.append(new_logits[:, k])
                off.append((new_off or [0.0] * HELD_OUT)[k])
            else:
                cols.append(base_te[:, i])
                off.append(base_off[i])
        return torch.stack(cols, 1), off

    def held_auc(logits: torch.Tensor) -> float:
        return float(np.mean([M.auc(logits[:, k], yt[:, j], mt[:, j]) for k, j in enumerate(held)]))

    full_logits = full.logits(Xte, tasks=task_of["test"])
    ref_auc = held_auc(full_logits[:, held])
    ref_correct = M.routed_correct(full_logits, yt, mt, full.offsets)
    ref_route = float(ref_correct.mean())
    print(f"(a) searched with every label: held-out AUC {ref_auc:.4f}, pool routing {ref_route:.4f}")

    base_tr = known.logits(Xtr, tasks=task_of["train"])
    train_ids = data.splits["train"]
    rows: list[dict[str, Any]] = []
    redrawn: dict[int, int] = {}
    for K in KS:
        for strategy in ("suggested", "random"):
            for rep in range(args.repeats):
                for attempt in range(20):  # a draw where a held-out LLM scores all one value is
                    # refused by onboarding (nothing to learn from): the next draw is taken
                    seed = rep + 100 * attempt
                    if strategy == "suggested":
                        pick = pick_questions(base_tr, K, seed=seed)
                    else:
                        pick = np.sort(np.random.default_rng(1000 + seed).choice(len(Xtr), K, replace=False))
                    if all(np.ptp(Ytr[pick, j][Mtr[pick, j]]) > 0 for j in held):
                        break
                    redrawn[K] = redrawn.get(K, 0) + 1
                folder = work / f"k{K}-{strategy}-{rep}"
                folder.mkdir(exist_ok=True)
                cols: dict[str, Any] = {
                    "id": train_ids[pick].tolist(),
                    "task": [task_of["train"][q] for q in pick],
                }
                for j in held:
                    cols[names[j]] = [float(Ytr[q, j]) if Mtr[q, j] else None for q in pick]
                pacsv.write_csv(pa.table(cols), folder / "scores.csv")
                np.save(folder / "scores.npy", Xtr[pick])
                start = time.perf_counter()
                done = onboard_router(
                    work / "known",
                    folder / "new.pt",
                    scores=str(folder / "scores.csv"),
                    options=DataOptions(embeddings=str(folder / "scores.npy")),
                )
                seconds = time.perf_counter() - start
                new = Router.load(folder / "new.pt")
                new_te = new.logits(Xte, tasks=task_of["test"])
                onboarded = new_te[:, [new.names.index(n) for n in held_names]]
                knn = torch.stack(
                    [
                        prob_logit(
                            torch.from_numpy(_knn(Xtr[pick][Mtr[pick, j]], Ytr[pick, j][Mtr[pick, j]], Xte))
                        )
                        for j in held
                    ],
                    1,
                ).float()
                means = torch.stack(
                    [torch.full((len(Xte),), float(Ytr[pick, j][Mtr[pick, j]].mean())) for j in held], 1
                )
                row: dict[str, Any] = {
                    "K": K,
                    "strategy": strategy,
                    "rep": rep,
                    "s_per_llm": seconds / HELD_OUT,
                }
                for method, logits in (("onboarded", onboarded), ("knn", knn), ("mean", prob_logit(means))):
                    row[f"{method}_auc"] = held_auc(logits) if method != "mean" else 0.5
                    new_off = (
                        [new.offsets[new.names.index(n)] for n in held_names]
                        if method == "onboarded"
                        else None
                    )
                    scores, off = pool(logits, new_off)
                    correct = M.routed_correct(scores, yt, mt, off)
                    row[f"{method}_route"] = float(correct.mean())
                    if method == "onboarded" and K == 64 and strategy == "suggested":
                        row["vs_a"] = M.paired_bootstrap(correct, ref_correct)
                rows.append(row)
                print(
                    f"K {K:>3} {strategy:<9} #{rep}: onboarded AUC {row['onboarded_auc']:.4f} route "
                    f"{row['onboarded_route']:.4f} | knn {row['knn_auc']:.4f} {row['knn_route']:.4f} | "
                    f"mean {row['mean_route']:.4f} | {row['s_per_llm']:.2f} s/LLM ({done.seconds:.2f} s all)",
                    flush=True,
                )

    def avg(K: int, strategy: str, key: str) -> float:
        return float(np.mean([r[key] for r in rows if r["K"] == K and r["strategy"] == strategy]))

    print(f"\nheld-out LLMs' test AUC and 29-LLM pool routing (mean of {args.repeats} draws)")
    print(f"(a) every label: AUC {ref_auc:.4f}, routing {ref_route:.4f}")
    print("   K  strategy   onboarded AUC  routing | kNN AUC  routing | mean routing | s/LLM")
    for K in KS:
        for s in ("suggested", "random"):
            a, r = avg(K, s, "onboarded_auc"), avg(K, s, "onboarded_route")
            ka, kr, mr = avg(K, s, "knn_auc"), avg(K, s, "knn_route"), avg(K, s, "mean_route")
            print(
                f"{K:>4}  {s:<9}  {a:.4f}         {r:.4f} | {ka:.4f}   {kr:.4f} | {mr:.4f}       | "
                f"{avg(K, s, 's_per_llm'):.2f}"
            )
    if redrawn:
        print(f"draws taken again (a held-out LLM scored all one value): {redrawn}")
    at64 = [r for r in rows if r["K"] == 64 and r["strategy"] == "suggested"]
    d, lo, hi = (float(np.mean([r["vs_a"][i] for r in at64])) for i in range(3))
    auc_gap = ref_auc - avg(64, "suggested", "onboarded_auc")
    print(
        f"\ntarget K=64 suggested: AUC {avg(64, 'suggested', 'onboarded_auc'):.4f} vs (a) {ref_auc:.4f} "
        f"(gap {auc_gap:+.4f}; within 0.02: {'yes' if auc_gap <= 0.02 else 'no'}); pool routing vs (a) "
        f"{100 * d:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] points (mean of draws; within 0.5: "
        f"{'yes' if d >= -0.005 else 'no'})"
    )
    above = all(
        avg(K, s, "onboarded_auc") > max(avg(K, s, "knn_auc"), 0.5)
        and avg(K, s, "onboarded_route") > max(avg(K, s, "knn_route"), avg(K, s, "mean_route"))
        for K in KS
        for s in ("suggested", "random")
    )
    print(f"target: above kNN and the mean at every K (AUC and routing): {'yes' if above else 'no'}")
    for K in (16, 32, 64):
        da = avg(K, "suggested", "onboarded_auc") - avg(K, "random", "onboarded_auc")
        dr = avg(K, "suggested", "onboarded_route") - avg(K, "random", "onboarded_route")
        print(f"target K={K}: suggested vs random: AUC {da:+.4f}, routing {100 * dr:+.2f} points")


if __name__ == "__main__":
    main()
