"""Hostile and careless input, run as a user would: one subprocess per case, against this
checkout or another (``--root``, e.g. a worktree of an older commit), to compare before/after.

For each case: the exit code, whether a traceback was printed, how many lines went to stderr,
the seconds it took (killed at ``--timeout``; the alias bombs' memory capped at 8 GB), and for the scenarios
whether what was on disk survived. The cases are the CLI cases of tests/search/
(test_hostile_input.py and test_bad_input.py) plus the scenarios of the reliability issue.

    python bench/hostile.py                      # this checkout
    python bench/hostile.py --root /tmp/old      # another checkout of the project
    python bench/hostile.py --round3             # the proxy's server memory under 8 hostile
                                                 # backends, descriptors under idle connections,
                                                 # the per-task baseline at 10^5 tasks
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
    parser.add_argument(
        "--round3", action="store_true", help="only the proxy's memory, idle connections and 10^5 tasks"
    )
    args = parser.parse_args()
    root = Path(args.root).resolve()
    if args.round3:
        round3(root)
        return
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


# -- the third round: the proxy's memory, idle connections, tasks as many as questions --------

ROUND3_SERVER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from search.__main__ import cli
sys.argv = ["search", *sys.argv[2:]]
cli()
"""


def _rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def _serve(
    root: Path, router: Path, backends: Path, extra: list[str], cwd: Path
) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "HOSTILE_KEY": "sk-bench-0123456789"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ROUND3_SERVER,
            str(root),
            "serve",
            str(router),
            "--port",
            "0",
            "--backends",
            str(backends),
            *extra,
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, line.split("http://")[1].split(" ")[0].rstrip("/")


def _router8(tmp: Path) -> Path:
    """A router of 8 LLMs (llm-0 .. llm-7) with a tiny encoder, for 8 backends on one server."""
    from router_models import create_model, save_router
    from search.data.encode import load_encoder
    from tests.search.encoders import make_encoder

    encoder = make_encoder(tmp / "enc8", seed=0, dim=16, max_seq_length=16)
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [16]}}, 16, 8)
    path = tmp / "router8.pt"
    identity = load_encoder(str(encoder), "{prompt}").identity.to_dict()
    save_router(model, path, model_names=[f"llm-{i}" for i in range(8)], encoder=identity)
    return path


def proxy_memory(root: Path, tmp: Path) -> list[str]:
    """One server, 8 hostile backends answered at once (three 200 KB gzips of 200 MB, two 200 MB
    plain answers, three plain answers that never end, their clients leaving after a while): the
    server's resident memory at its peak, against its memory at rest."""
    import gzip
    import threading

    import httpx

    from tests.search.serving import write_backends
    from tests.search.test_proxy_hostile import Hostile

    router = _router8(tmp)
    modes = ["gzip", "gzip", "gzip", "big200", "big200", "endless", "endless", "endless"]
    bomb = gzip.compress(b" " * (200 * 2**20), 9)
    backends = [Hostile(m) for m in modes]
    for b in backends:
        b.bomb = bomb
    try:
        cfg = write_backends(
            tmp / "b8.yaml",
            {
                f"llm-{i}": {"base_url": b.url(), "model": "m", "api_key_env": "HOSTILE_KEY"}
                for i, b in enumerate(backends)
            },
        )
        server, where = _serve(root, router, cfg, [], tmp)
        try:
            base = peak = _rss_mb(server.pid)
            stop = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, _rss_mb(server.pid))
                    time.sleep(0.05)

            def client(i: int) -> None:
                body = {"model": f"llm-{i}", "messages": [{"role": "user", "content": "what is the sum"}]}
                try:
                    with (
                        httpx.Client(timeout=120) as c,
                        c.stream("POST", f"http://{where}/v1/chat/completions", json=body) as r,
                    ):
                        for n, _ in enumerate(r.iter_raw()):
                            if modes[i] == "endless" and n > 200:  # a client that leaves after a while
                                break
                except httpx.HTTPError:
                    pass

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            start = time.monotonic()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            time.sleep(1)
            stop.set()
            gone = [b.gone_at - start for b in backends if b.mode == "endless" and b.gone_at is not None]
            return [
                f"  8 hostile backends at once through one server: resident memory {base:.0f} MB at rest, "
                f"{peak:.0f} MB at its peak (+{peak - base:.0f} MB), {time.monotonic() - start:.1f} s",
                f"  endless answers: the backend saw its reader gone {len(gone)} of 3 times, after "
                + ", ".join(f"{g:.1f} s" for g in gone),
            ]
        finally:
            _stop(server)
    finally:
        for b in backends:
            b.close()


def idle_connections(root: Path, tmp: Path, count: int = 2000, timeout_s: float = 10.0) -> list[str]:
    """``count`` connections that send nothing, and as many that send half their headers: the
    server's open descriptors while they wait, and once the header timeout has passed."""
    import socket

    import psutil

    from tests.search.serving import write_backends

    router = _router8(tmp)
    cfg = write_backends(tmp / "idle.yaml", {"llm-0": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}})
    has_flag = "--header-timeout" in (root / "search" / "cli" / "serve.py").read_text()
    server, where = _serve(root, router, cfg, ["--header-timeout", str(timeout_s)] if has_flag else [], tmp)
    host, port = where.rstrip("/").rsplit(":", 1)
    socks = []
    try:
        fds0 = psutil.Process(server.pid).num_fds()
        for i in range(count):
            try:
                s = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                break
            if i % 2:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        time.sleep(0.5)
        waiting = psutil.Process(server.pid).num_fds()
        time.sleep(timeout_s + 2)
        after = psutil.Process(server.pid).num_fds()
        ok = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{where}/healthz"],
            capture_output=True,
            text=True,
        ).stdout
        return [
            f"  {len(socks)} idle or half-sent connections: server descriptors {fds0} at rest, {waiting} "
            f"while they wait, {after} after {timeout_s:g} s + 2 s; /healthz then answers {ok}"
        ]
    finally:
        for s in socks:
            s.close()
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL when it has not drained within 30 s (a server still reading)."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)


PER_TASK = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import dataclasses, numpy as np
from search.data import load_data
from search import metrics as M
d = load_data("synthetic:n_questions=120000,n_models=20,dim=16,seed=1")
T = 100_000
tasks = np.random.default_rng(0).integers(0, T, 120000).astype(np.int32)
d = dataclasses.replace(d, tasks=tasks, task_names=[f"t{i}" for i in range(T)])
_, y, m = d.split("train")
t = time.perf_counter()
M.task_best_scores(y, m, d.split_tasks("train"), d.split_tasks("test"), T)
print(f"{time.perf_counter() - t:.2f}")
"""


def per_task(root: Path, timeout: float = 600.0) -> list[str]:
    """The per-task baseline at 10^5 tasks on 120,000 questions."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        out = subprocess.run(
            [sys.executable, "-c", PER_TASK, str(root)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        took = f"{out.stdout.strip()} s" if out.returncode == 0 else f"failed ({out.stderr.strip()[-200:]})"
    except subprocess.TimeoutExpired:
        took = f"more than {timeout:.0f} s (killed)"
    return [f"  the per-task baseline, 10^5 tasks x 120,000 questions x 20 LLMs: {took}"]


def round3(root: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print("the proxy's memory under hostile backends:")
        for line in proxy_memory(root, Path(tmp)):
            print(line)
        print("idle connections:")
        for line in idle_connections(root, Path(tmp)):
            print(line)
        print("tasks as many as questions:")
        for line in per_task(root):
            print(line)


if __name__ == "__main__":
    main()
