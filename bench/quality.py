"""Quality on real data, against every baseline: a search (``spaces/routers.yaml`` by default) on
the built-in MMLU-Pro set and on harder variants of it a user meets, then on the test split the
recommended router, each family's best trial, the ensemble and the baselines (single best, best
per task, kNN), with paired 95% intervals of the recommended router against each baseline.

Sets (``--sets``, default all):
- ``builtin``: the built-in set as shipped (9,625 train questions, 29 LLMs, 14 tasks);
- ``few``: 1,000 train questions (a seeded sample of the train split; val and test as shipped);
- ``graded``: graded scores: 1 for the right answer, 0.2 for a wrong answer letter, 0 for no
  answer extracted (each LLM's own prediction, ../shared/data/mmlu_pro/predictions.csv);
- ``dominant``: 6 LLMs of which one (gemini-1.5-pro-002) dominates the other five
  (Llama-2-7b/13b, Mistral-7B, gemma-7b, Yi-6B).

Targets on every set: the recommended router within 0.5 point of the best baseline on test and
never significantly below any (paired 95% interval); significantly above the best of them on at
least half of the sets, the few-data set among them.

    python bench/quality.py [--sets builtin,few,graded,dominant] [--space spaces/routers.yaml]
                            [--trials N] [--seed S] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from common import ROOT, load_yaml, run_search, write_yaml

from search import metrics as M
from search.data import load_data
from search.data.builtin import BUILTIN
from search.results.export import run_routers
from search.results.routing_table import load_routed, routing_table

SHARED = ROOT.parent / "shared" / "data" / "mmlu_pro"
DOMINANT = ["gemini-1.5-pro-002", "Llama-2-7b-hf", "Llama-2-13b-hf", "Mistral-7B-v0.1", "gemma-7b", "Yi-6B"]
FEW = 1000
SETS = ("builtin", "few", "graded", "dominant")


def _builtin() -> tuple[pa.Table, np.ndarray]:
    folder = BUILTIN["mmlu-pro"]
    table = pq.read_table(folder / "labels.parquet")
    X = np.load(folder / "embeddings.npy").astype(np.float32)
    return table, X


def _graded(table: pa.Table) -> pa.Table:
    answers = {}
    with open(SHARED / "questions.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            answers[int(row["question_id"])] = row["answer"]
    preds: dict[int, dict[str, str]] = {}
    with open(SHARED / "predictions.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            preds[int(row.pop("question_id"))] = row
    qids = table.column("question_id").to_pylist()
    out = table
    for name in table.column_names:
        if name in ("prompt_id", "split", "question_id", "category"):
            continue
        grades = []
        for q, label in zip(qids, table.column(name).to_pylist()):
            pred = preds.get(q, {}).get(name, "")
            if label is None or pred == "":
                grades.append(None)
            elif pred == answers[q]:
                grades.append(1.0)
            else:
                grades.append(0.0 if pred == "NONE" else 0.2)
        out = out.set_column(out.column_names.index(name), name, pa.array(grades, pa.float64()))
    return out


def make_set(name: str, folder: Path, seed: int) -> dict[str, Any]:
    """The set's files (a wide parquet and its embeddings) and the search's data options."""
    if name == "builtin":
        return {"data": "mmlu-pro"}
    table, X = _builtin()
    if name == "few":
        split = np.asarray(table.column("split").to_pylist())
        train = np.flatnonzero(split == "train")
        keep = np.sort(np.random.default_rng(seed).choice(train, FEW, replace=False))
        rows = np.sort(np.concatenate([keep, np.flatnonzero(split != "train")]))
        table = table.take(pa.array(rows))
    elif name == "graded":
        table = _graded(table)
    elif name == "dominant":
        table = table.select(["prompt_id", "split", "question_id", "category", *DOMINANT])
    table = table.drop(["question_id"]).rename_columns(
        ["task" if c == "category" else c for c in table.drop(["question_id"]).column_names]
    )
    path = folder / f"{name}.parquet"
    pq.write_table(table, path)
    np.save(folder / "embeddings.npy", X)
    return {
        "data": str(path),
        "embeddings": str(folder / "embeddings.npy"),
        "align": "id",
        "id_column": "prompt_id",
    }


def evaluate(run: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The run's routers (the best trial, each family's best, the ensemble) and the baselines
    on test, and the recommended router against the best baseline there."""
    given = {k: v for k, v in options.items() if k != "data"}
    data = load_data(options["data"], **given)
    routed = [load_routed(e, data) for e in run_routers(run)]
    table = routing_table(routed, data)
    _, y, m = data.split("test")
    rec = next(r for r in table.rows if r["router"] == table.recommended)
    refs = [r for r in table.rows if r["kind"] == "baseline"]
    best_ref = max(refs, key=lambda r: r["route_acc"])
    out = {"table": table, "recommended": rec, "best_baseline": best_ref}
    if rec["router"] == best_ref["router"]:
        out["vs_best"] = (0.0, 0.0, 0.0)
    else:
        a, b = (next(r for r in routed if r.name == row["router"]) for row in (rec, best_ref))
        out["vs_best"] = M.paired_bootstrap(
            M.routed_correct(a.test, y, m, a.offsets), M.routed_correct(b.test, y, m, b.offsets)
        )
    out["below_any"] = [
        r["router"] for r in refs if rec.get(f"vs_{r['baseline']}", {}).get("verdict") == "worse"
    ]
    return out


def report(name: str, result: dict[str, Any], wall: float, states: dict[str, int]) -> dict[str, Any]:
    table = result["table"]
    print(f"\n=== {name}: search {wall:.0f} s, trials {states} ===")
    print(table.text)
    rec, ref = result["recommended"], result["best_baseline"]
    diff, low, high = result["vs_best"]
    within = rec["route_acc"] >= ref["route_acc"] - 0.005
    above = low > 0
    print(
        f"target [{name}]: recommended {rec['router']} test {rec['route_acc']:.4f} vs best baseline "
        f"{ref['router']} {ref['route_acc']:.4f}: {100 * diff:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}] "
        f"points; within 0.5 point: {'yes' if within else 'no'}; significantly below a baseline: "
        f"{', '.join(result['below_any']) or 'none'}; significantly above the best: "
        f"{'yes' if above else 'no'}"
    )
    return {"set": name, "within": within, "above": above, "below": bool(result["below_any"])}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--space", default=str(ROOT / "spaces" / "routers.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--seed", type=int, default=0, help="the search's seed and the few-data sample's")
    p.add_argument("--keep", help="keep the runs in this folder")
    args = p.parse_args()
    names = [s for s in args.sets.split(",") if s]
    bad = [s for s in names if s not in SETS]
    if bad:
        raise SystemExit(f"--sets: unknown {bad[0]!r}; valid: {', '.join(SETS)}")
    raw = load_yaml(Path(args.space))
    raw["search"]["seed"] = args.seed
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    torch.set_num_threads(2)
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        space = write_yaml(root / "quality.yaml", raw)
        for name in names:
            folder = root / name
            folder.mkdir(exist_ok=True)
            options = make_set(name, folder, args.seed)
            start = time.perf_counter()
            rc, wall, rows = run_search(space, folder / "run", **options)
            assert rc == 0, f"{name}: no trial completed"
            states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
            result = evaluate(folder / "run", options)
            verdicts.append(report(name, result, wall, states))
            print(f"({time.perf_counter() - start:.0f} s in all)")
    print("\nsummary:")
    for v in verdicts:
        print(
            f"  {v['set']}: within 0.5 point of the best baseline: {'yes' if v['within'] else 'no'}; "
            f"significantly below one: {'yes' if v['below'] else 'no'}; significantly above the best: "
            f"{'yes' if v['above'] else 'no'}"
        )
    above = sum(v["above"] for v in verdicts)
    print(f"  significantly above the best baseline on {above} of {len(verdicts)} sets")


if __name__ == "__main__":
    main()
