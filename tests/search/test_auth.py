"""Clusters as users start them: Ray's own CLI with token authentication, on loopback only.

Why this start-up path: it is `ray start --head` itself, Ray's CLI, with token authentication
on (RAY_AUTH_MODE=token and a token in RAY_AUTH_TOKEN, as the README's recipe). Plain `ray
start` binds every interface and names the node by the machine's own address, which these tests
must not use; with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, Ray's own switch for machines that do
not run multi-node clusters, the same CLI binds and names everything on 127.0.0.1, so it is the
closest to `ray start` that stays on loopback (the search's driver gets the same setting). The
head is stopped by ending the processes of its own temp dir: `ray stop` would end every Ray on
the machine.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.search.procs import start_search
from tests.search.spaces import tiny_space, write_space

pytestmark = pytest.mark.slow
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(temp_dir: Path) -> None:
    import psutil

    procs = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(str(temp_dir) in a for a in p.info["cmdline"] or [])
    ]
    for p in procs:
        p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        p.kill()


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory):
    """A head started with `ray start`, token authentication on, reachable at 127.0.0.1 only."""
    tmp = tmp_path_factory.mktemp("cluster")
    token = secrets.token_hex(16)
    port = _free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    env = {**os.environ, **LOOPBACK, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    cmd = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    cmd += ["--disable-usage-stats", f"--temp-dir={tmp / 'ray'}"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", token, tmp
    finally:
        _stop(tmp / "ray")


def _search(tmp: Path, address: str, env: dict[str, str], name: str) -> tuple[int, str, Path, float]:
    space = tiny_space(search={"num_samples": 3})
    space["data"] = {"synthetic": {"n_questions": 300, "n_models": 6, "dim": 16, "seed": 2}}
    path = write_space(tmp / f"{name}.yaml", space)
    run = tmp / name
    args = [str(path), "--address", address, "--storage", str(tmp / f"{name}-shared"), "--out", str(run)]
    args += ["--export", str(tmp / f"{name}.json")]
    start = time.monotonic()
    inherited = {"RAY_AUTH_MODE": None} if "RAY_AUTH_MODE" not in env else {}  # the case's own, only
    proc = start_search(args, tmp, env={**LOOPBACK, **inherited, **env})
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err, run, time.monotonic() - start


def _no_token_env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"  # no ~/.ray/auth_token there
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": ""}


def test_a_search_runs_on_a_token_cluster_and_never_prints_the_token(token_cluster) -> None:
    address, token, tmp = token_cluster
    rc, text, run, _ = _search(tmp, address, {"RAY_AUTH_TOKEN": token}, "ok")
    assert rc == 0, text
    assert token not in text
    rows = pq.read_table(run / "results.parquet").to_pylist()
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}
    assert token not in (run / "run.json").read_text() and (tmp / "ok.json").exists()


def test_a_token_in_a_file_works_too(token_cluster, tmp_path: Path) -> None:
    address, token, tmp = token_cluster
    secret = tmp_path / "token"
    secret.write_text(token)
    env = {**_no_token_env(tmp_path), "RAY_AUTH_TOKEN_PATH": str(secret)}
    rc, text, _, _ = _search(tmp_path, address, env, "file")
    assert rc == 0, text


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        (
            "wrong token",
            "the cluster refused the token from RAY_AUTH_TOKEN: it is not the token the cluster was started with",
        ),
        ("missing token", "the cluster requires a token and none is set here"),
        ("nothing listening", "cannot connect (Connection refused)"),
        ("not a Ray port", "something listens there, but no Ray cluster answered within 4 s"),
    ],
)
def test_a_failed_connection_is_one_line_within_10_s(
    token_cluster, tmp_path: Path, case: str, fragment: str
) -> None:
    address, _, _ = token_cluster
    env: dict[str, str] = {"RAY_AUTH_TOKEN": secrets.token_hex(16)}
    listener = None
    if case == "missing token":
        env = _no_token_env(tmp_path)
    elif case == "nothing listening":
        address = f"127.0.0.1:{_free_port()}"
    elif case == "not a Ray port":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        rc, text, run, seconds = _search(tmp_path, address, env, "bad")
    finally:
        if listener is not None:
            listener.close()
    assert rc == 2, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --address ") and fragment in lines[0], text
    assert "Traceback" not in text and seconds < 10
    assert not run.exists() and not (tmp_path / "bad.json").exists()  # nothing written


def test_a_ray_version_mismatch_is_one_line(token_cluster) -> None:
    # In a process of its own: token mode, once read by Ray's core, stays for the process.
    address, token, _ = token_cluster
    script = (
        "import ray, sys\n"
        "from search.driver.cluster import probe\n"
        "from search.errors import UserError\n"
        "ray.__version__ = '2.99.0'\n"
        "try:\n"
        f"    probe({address!r})\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    env = {
        **os.environ,
        **LOOPBACK,
        "RAY_AUTH_TOKEN": token,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    env.pop("RAY_AUTH_MODE", None)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    import ray

    there = ray.__version__  # the cluster's: the Ray this test runs on
    assert f"the cluster runs Ray {there} on Python 3." in out and "this driver Ray 2.99.0" in out, out
    assert f"install the cluster's versions here (pip install ray[tune]=={there})" in out
