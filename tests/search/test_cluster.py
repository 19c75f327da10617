"""Cluster mode on one machine: a head and two worker nodes with logical GPUs, all on 127.0.0.1
(tests/conftest.py sets Ray's single-machine switch for this process and the search's)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.search.procs import completed, start_search, training_on, wait_for
from tests.search.spaces import tiny_space, write_space

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [c.add_node(num_cpus=4, num_gpus=1) for _ in range(2)]
    c.wait_for_nodes()
    assert c.address.startswith("127.0.0.1:") and {w.node_ip_address for w in workers} == {"127.0.0.1"}
    yield c, workers
    c.shutdown()


def _space(tmp_path: Path, n: int, epochs: int = 4, pack_size: int = 1) -> Path:
    space = tiny_space(
        params={"epochs": epochs},
        resources={"cpu": 1, "gpu": 0.5},
        search={"num_samples": n, "max_concurrent_trials": 4, "pack_size": pack_size},
    )
    space["data"] = {"synthetic": {"n_questions": 1200, "n_models": 20, "dim": 64, "seed": 2}}
    return write_space(tmp_path / "space.yaml", space)


def _max_overlap(rows: list[dict]) -> int:
    events = sorted(
        [(r["start_time"], 1) for r in rows] + [(r["start_time"] + r["duration_s"], -1) for r in rows]
    )
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def _start(c, space: Path, run: Path, storage: Path, tmp_path: Path):
    args = [str(space), "--out", str(run), "--address", c.address, "--storage", str(storage)]
    return start_search([*args, "--export", str(tmp_path / "config.json")], tmp_path)


def test_trials_spread_over_workers_and_pack_on_logical_gpus(cluster, tmp_path: Path) -> None:
    c, workers = cluster
    # Trials long enough that four run at once: both workers, two per logical GPU.
    space, run, storage = _space(tmp_path, 8, epochs=20), tmp_path / "run", tmp_path / "shared"
    proc = _start(c, space, run, storage, tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    rows = pq.read_table(run / "results.parquet").to_pylist()
    assert len(rows) == 8 and {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    worker_ids = {w.node_id for w in workers}
    nodes = {r["node"] for r in rows}
    assert nodes == worker_ids  # both workers used, never the CPU-less head
    assert {r["device"] for r in rows} == {"cpu"}  # logical GPUs, no CUDA: trained on CPU
    per_node = [_max_overlap([r for r in rows if r["node"] == n]) for n in worker_ids]
    assert max(per_node) == 2  # gpu 0.5: two trials share one logical GPU, never three
    # trial routers on the shared storage, in the run's own folder there
    own = Path(json.loads((run / "run.json").read_text())["storage"])
    assert own.parent == storage and own.name.startswith("run-") and (own / "routers").is_dir()
    config = json.loads((tmp_path / "config.json").read_text())
    assert (run / "best_router.pt").exists() and config["search_result"]["trials"]["FAIL"] == 0


@pytest.mark.parametrize("pack_size", [1, 2])
def test_worker_node_dies_mid_search(cluster, tmp_path: Path, pack_size: int) -> None:
    c, workers = cluster
    n = 6 * pack_size  # as many Tune trials either way
    # Trials of some seconds, so the one seen training on the node still trains when it goes.
    space, run = _space(tmp_path, n, epochs=100, pack_size=pack_size), tmp_path / "run"
    storage = tmp_path / "shared"
    proc = _start(c, space, run, storage, tmp_path)
    # A node is removed while it trains a pack: waiting for completions alone raced with the
    # end of a wave of equal trials and sometimes removed an idle node; waiting for one given
    # node raced with a second wave that Ray placed wholly on the other. Look last, act at once.
    seen: list = []

    def a_node_trains() -> bool:
        if len(completed(run)) < 2:
            return False
        seen[:] = [w for w in workers if training_on(w)][:1]
        return bool(seen)

    wait_for(a_node_trains, 240, proc, step=0.1)
    before = completed(run)
    lost = seen[0]
    survivor = next(w for w in workers if w is not lost)
    c.remove_node(lost)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    rows = pq.read_table(run / "results.parquet").to_pylist()
    assert len({r["trial"] for r in rows}) == len(rows)
    for number, value in before.items():  # nothing completed is lost
        row = next(r for r in rows if r["trial"] == number)
        assert (row["state"], row["value"]) == ("COMPLETE", value)
    # every trial ended in a final state: retried to completion, or FAIL
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert sum(not r["interrupted"] for r in rows) == n
    if pack_size > 1:  # members of one pack shared its fate, node and restarts
        for pack in {r["pack"] for r in rows}:
            members = [r for r in rows if r["pack"] == pack]
            assert len({(r["node"], r["restarts"]) for r in members if r["state"] == "COMPLETE"}) <= 1
    # the trials that were on the lost node were retried elsewhere (bounded) or failed
    affected = [r for r in rows if r["restarts"] or r["state"] == "FAIL"]
    assert affected, rows
    for r in affected:
        if r["state"] == "FAIL":
            assert r["error"]  # e.g. "trial process failed": its node went before a retry
        else:
            assert r["node"] == survivor.node_id  # finished on the surviving worker
    assert (tmp_path / "config.json").exists()
