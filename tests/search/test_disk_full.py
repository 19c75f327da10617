"""A full disk: one line naming the path, nothing half-written, and the rerun works once space is
freed; and outputs that honour the umask. The full disk is a small tmpfs the test mounts, where
the machine allows it (root); elsewhere those tests are skipped, saying why."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from search.__main__ import main
from search.data import load_folder
from search.files.atomic import atomic_write_bytes
from tests.search.spaces import tiny_space, write_space

SYNTH = "synthetic:n_questions=300,n_models=6,dim=16,seed=1"


def _fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` to the last byte (but ``leave`` bytes); returns the
    filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 512, 1):  # down to the last partial block
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    return filler


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({proc.stderr.strip() or 'mount failed'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _one_line(err: str, path: Path) -> None:
    assert err.startswith(f"error: {path}") and err.count("\n") == 1, err
    assert "no space left on device; nothing was left half-written: free space and run again" in err
    assert "Traceback" not in err


def test_atomic_write_on_a_full_disk_keeps_the_old_file_whole(full_disk: Path) -> None:
    target = full_disk / "config.json"
    target.write_bytes(b'{"old": true}\n')
    _fill(full_disk)
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(target, b"x" * 100_000)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == b'{"old": true}\n'
    assert sorted(p.name for p in full_disk.iterdir()) == ["config.json", "filler"]  # no temp file left


@pytest.mark.parametrize("leave", [0, 8192, 16384], ids=["full", "8 KB left", "16 KB left"])
def test_convert_on_a_full_disk_leaves_nothing_and_reruns(full_disk: Path, capsys, leave: int) -> None:
    # with a few KB left, a table is written and the embeddings' write comes up short
    filler = _fill(full_disk, leave)
    dst = full_disk / "converted"
    assert main(["data", "convert", SYNTH, str(dst)]) == 2
    _one_line(capsys.readouterr().err, dst)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no half-written layout
    filler.unlink()
    assert main(["data", "convert", SYNTH, str(dst)]) == 0
    assert load_folder(dst).num_models == 6


def test_route_out_on_a_full_disk(full_disk: Path, tmp_path: Path, capsys) -> None:
    from router_models import create_model, save_router

    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [8]}}, 4, 2)
    save_router(model, tmp_path / "r.pt", model_names=["a", "b"])
    np.save(tmp_path / "q.npy", np.zeros((2000, 4), dtype=np.float32))
    _fill(full_disk)
    out = full_disk / "routes.csv"
    assert main(["route", str(tmp_path / "r.pt"), str(tmp_path / "q.npy"), "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err, out)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


@pytest.mark.slow
def test_a_run_on_a_full_disk_is_one_line_and_runs_once_space_is_freed(
    full_disk: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path / "s.yaml", tiny_space(search={"num_samples": 2, "ensemble": {"size": 0}}))
    filler = _fill(full_disk)
    run = full_disk / "runs" / "r"
    argv = ["run", str(space), "--out", str(run), "--export", str(tmp_path / "c.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    _one_line(err, run)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no run dir, not even runs/
    filler.unlink()
    assert main(argv) == 0
    assert (run / "best_router.pt").is_file() and (tmp_path / "c.json").is_file()


@pytest.mark.slow
def test_a_disk_that_fills_during_a_run_stops_it_in_one_line_and_resume_goes_on(
    full_disk: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path / "s.yaml", tiny_space(search={"ensemble": {"size": 0}}))
    filler = _fill(full_disk, leave=48 << 10)  # room for the run's record and study, not its routers
    run = full_disk / "r"
    argv = ["run", str(space), "--out", str(run), "--export", str(tmp_path / "c.json")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: {run}: no space left on device; the run's state is saved up to there: free space and "
        f"resume with: python -m search run {space} --out {run} --resume\n"
    )
    assert "Traceback" not in captured.out
    filler.unlink()
    assert main([*argv, "--resume"]) == 0
    rows = [r for r in pq.read_table(run / "results.parquet").to_pylist() if not r["interrupted"]]
    assert sum(r["state"] == "COMPLETE" for r in rows) == 4  # the trials the disk cost are re-run


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "f.json", b"{}")
        assert main(["data", "convert", SYNTH, str(tmp_path / "layout")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "layout").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "layout" / "train.parquet").stat().st_mode & 0o777 == 0o666 & ~umask
    shutil.rmtree(tmp_path / "layout")
