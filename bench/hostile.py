"""Hostile and careless input, run as a user would: one subprocess per case, against this
checkout or another (``--root``, e.g. a worktree of an older commit), to compare before/after.

For each case: the exit code, whether a traceback was printed, how many lines went to stderr,
the seconds it took (killed at ``--timeout``; the alias bombs' memory capped at 8 GB), and for the scenarios
whether what was on disk survived. The cases are the CLI cases of tests/search/
(test_hostile_input.py and test_bad_input.py) plus the scenarios of the reliability issue.

    python bench/hostile.py                      # this checkout
    python bench/hostile.py --root /tmp/old      # another checkout of the project
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from tests.search.spaces import tiny_space, write_space  # noqa: E402
from tests.search.test_hostile_input import CASES  # noqa: E402

# The classes, and which CLI cases belong to each (the rest are "tracebacks").
UNBOUNDED = {
    "alias bomb",
    "alias bomb validate",
    "route: a config asking for 30000x30000",
    "cpus no node has",
    "storage without a bucket",
    "storage of an unknown scheme",
    "one label in val",
    "synthetic 10**12 questions",
    "synthetic too many values",
}
DATA_LOSS = {"misspelt param", "unknown param", "config misspelt key"}
SILENT = {
    "complex embeddings",
    "complex tensor embeddings",
    "datetime embeddings",
    "duplicate yaml key",
    "two llms of one name",
    "latin-1 llm names",
    "all costs empty",
    "records with a key twice",
    "config with a key twice",
}


def _session() -> None:
    os.setsid()


def _limit_memory() -> None:
    # Only where a case may grow without bound (the alias bombs): Ray's processes reserve far
    # more address space than they use and would not start under a cap.
    os.setsid()
    cap = 8 << 30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def run(root: Path, args: list[str], cwd: Path, timeout: float, cap: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_memory if cap else _session,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = "killed"
    return {
        "rc": rc,
        "traceback": "Traceback" in err or "Traceback" in out,
        "stderr_lines": len(err.splitlines()),
        "seconds": round(time.monotonic() - start, 1),
        "last": (err.strip().splitlines() or [""])[-1][:160],
    }


def cli_cases(root: Path, timeout: float) -> list[tuple[str, str, dict]]:
    rows = []
    for name in sorted(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            (t / "config.json").write_text(
                '{"pipeline_config": {"model_type": "mlp", "model_config": {"hidden_dims": [8]}}}\n'
            )
            argv = CASES[name][0](t)
            result = run(root, argv, t, timeout, cap="bomb" in name)
        cls = (
            "unbounded work"
            if name in UNBOUNDED
            else "data loss"
            if name in DATA_LOSS
            else "accepted though wrong"
            if name in SILENT
            else "tracebacks"
        )
        rows.append((cls, name, result))
    return rows


def _own_router(run_dir: Path) -> str:
    import torch

    payload = torch.load(run_dir / "best_router.pt", weights_only=True)
    return f"{payload['config']['pipeline_config']['model_type']}/{payload['num_models']}"


def scenarios(root: Path, timeout: float) -> list[tuple[str, str, dict]]:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="rs-hostile-"))
    try:
        a = write_space(tmp / "a.yaml", tiny_space())
        b = write_space(
            tmp / "b.yaml",
            tiny_space(
                model_type="mf",
                params={"hidden_dims": [8], "lr": 0.01, "batch_size": 64, "epochs": 4},
                data={"synthetic": {"n_questions": 300, "n_models": 5, "dim": 16, "n_topics": 3, "seed": 7}},
            ),
        )
        shared = tmp / "shared"

        # Two runs on one --storage, one after the other; then resume the first.
        def search(space: Path, out: str, *extra: str) -> dict:
            argv = ["run", str(space), "--out", str(tmp / out), "--export", str(tmp / f"{out}.json")]
            return run(root, [*argv, *extra], tmp, timeout)

        r1 = search(a, "ra", "--storage", str(shared))
        r2 = search(b, "rb", "--storage", str(shared))
        r3 = search(a, "ra", "--storage", str(shared), "--resume", "--num-samples", "6")
        kept = _own_router(tmp / "ra") if (tmp / "ra" / "best_router.pt").exists() else "none"
        r3["kept"] = (
            f"runs A, B: rc {r1['rc']}, {r2['rc']}; A's best router after B and a resume of A: {kept} "
            "(A's own is mlp/6)"
        )
        rows.append(("data loss", "shared --storage, resume after another run", r3))

        # Two drivers on one run dir: the second resumes while the first trains.
        slow = write_space(
            tmp / "slow.yaml", tiny_space(params={"epochs": 25}, search={"max_concurrent_trials": 1})
        )
        env = {**os.environ, "PYTHONPATH": str(root), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        first = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "search",
                "run",
                str(slow),
                "--out",
                str(tmp / "rl"),
                "--export",
                str(tmp / "rl.json"),
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(240):
            if (tmp / "rl" / "study.journal").exists() and (
                tmp / "rl" / "study.journal"
            ).stat().st_size > 400:
                break
            time.sleep(0.5)
        second = search(slow, "rl", "--resume")
        first.communicate(timeout=timeout)
        states = []
        if (tmp / "rl" / "results.parquet").exists():
            import pyarrow.parquet as pq

            states = [r["state"] for r in pq.read_table(tmp / "rl" / "results.parquet").to_pylist()]
        second["kept"] = f"first driver: rc {first.returncode}, trials {states}"
        rows.append(("data loss", "a second driver resumes a live run dir", second))

        # Resume with another space: is the run dir left byte-identical?
        other = write_space(tmp / "other.yaml", tiny_space(search={"pruner": {"type": "median"}}))
        before = {p.name: p.read_bytes() for p in (tmp / "ra").iterdir() if p.is_file()}
        r = search(other, "ra", "--resume")
        after = {p.name: p.read_bytes() for p in (tmp / "ra").iterdir() if p.is_file()}
        r["kept"] = (
            "run dir byte-identical"
            if after == before
            else f"changed: {sorted(k for k in after if after.get(k) != before.get(k))}"
        )
        rows.append(("data loss", "resume with another space", r))

        # report on a finished run: does it write into the study?
        journal = (
            (tmp / "rb" / "study.journal").read_bytes() if (tmp / "rb" / "study.journal").exists() else b""
        )
        r = run(root, ["report", str(tmp / "rb")], tmp, timeout)
        r["kept"] = (
            "journal unchanged"
            if (tmp / "rb" / "study.journal").read_bytes() == journal
            else "journal written"
        )
        rows.append(("smaller", "report on a finished run", r))

        # Output modes under umask 022.
        old = os.umask(0o022)
        try:
            r = run(root, ["data", "convert", "synthetic:n_questions=60", str(tmp / "conv")], tmp, timeout)
        finally:
            os.umask(old)
        mode = (
            oct((tmp / "ra" / "config.json").stat().st_mode & 0o777)
            if (tmp / "ra" / "config.json").exists()
            else "-"
        )
        r["kept"] = f"config.json mode {mode} under umask 022"
        rows.append(("smaller", "output file modes", r))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(HERE), help="the checkout to run (default: this one)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case is killed")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--no-scenarios", action="store_true")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    rows = cli_cases(root, args.timeout)
    if not args.no_scenarios:
        rows += scenarios(root, 300.0)
    print(f"{'class':<22} {'case':<44} {'exit':>6} {'tb':>3} {'lines':>5} {'s':>6}  note")
    for cls, name, r in rows:
        print(
            f"{cls:<22} {name[:44]:<44} {str(r['rc']):>6} {'y' if r['traceback'] else '-':>3} "
            f"{r['stderr_lines']:>5} {r['seconds']:>6}  {r.get('kept') or r['last']}"
        )
    print()
    by_class: dict[str, list[dict]] = {}
    for cls, _, r in rows:
        by_class.setdefault(cls, []).append(r)
    for cls, rs in by_class.items():
        one_line = sum(r["rc"] == 2 and not r["traceback"] and r["stderr_lines"] == 1 for r in rs)
        tracebacks = sum(r["traceback"] for r in rs)
        killed = sum(r["rc"] == "killed" for r in rs)
        print(
            f"{cls:<22} {len(rs):>3} cases: {one_line} one line + exit 2, {tracebacks} with a traceback, "
            f"{killed} killed at the timeout, {max(r['seconds'] for r in rs):.1f} s at most"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([{"class": c, "case": n, **r} for c, n, r in rows], indent=2))


if __name__ == "__main__":
    main()
