"""The Python API: ``search.run`` and ``search.train`` return objects, raise UserError on a
mistake, and leave the process as they found it (environment, a caller's Ray, the kernel)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import search
from search.errors import UserError
from tests.search.procs import ROOT, completed, start_python, wait_for
from tests.search.spaces import tiny_space, write_space


def test_the_package_is_light_and_names_its_api() -> None:
    # ``python -m search`` imports the package first: it must not import torch or Ray.
    code = "import sys, search; print('torch' in sys.modules, 'ray' in sys.modules, search.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split()[:2] == ["False", "False"]
    for name in search.__all__:
        assert getattr(search, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        search.nope  # noqa: B018


def test_a_mistake_raises_user_error_with_the_cli_line(tmp_path: Path, capsys) -> None:
    from search.cli.main import main

    space = write_space(tmp_path / "s.yaml", tiny_space())
    with pytest.raises(UserError) as exc:
        search.run(space, num_samples=0, out=tmp_path / "run")
    # each names the option as its caller does: the API's argument, the command line's flag
    assert str(exc.value) == "search.run: num_samples must be a whole number >= 1 (or None), got 0"
    assert main(["run", str(space), "--num-samples", "0", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == "error: --num-samples must be from 1 to 1,000,000, got 0"
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="unknown argument"):
        search.run(space, num_sample=3)
    with pytest.raises(UserError, match="file not found"):
        search.train(tmp_path / "missing.json", out=tmp_path / "t")


def test_a_model_config_the_models_refuse_is_a_user_error_with_its_cause(tmp_path: Path) -> None:
    from router_models import ConfigError

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model_type": "mlp", "model_config": {"hidden_dims": [8], "nope": 1}}))
    with pytest.raises(UserError, match="nope") as exc:
        search.train(config, data="synthetic:n_questions=60,n_models=3,dim=8", out=tmp_path / "t", quiet=True)
    assert isinstance(exc.value.__cause__, ConfigError)


def test_train_returns_each_configs_router_and_metrics(tmp_path: Path) -> None:
    configs = []
    for i, width in enumerate((8, 16)):
        path = tmp_path / f"c{i}.json"
        spec = {"model_type": "mlp", "model_config": {"hidden_dims": [width]}, "train_config": {"epochs": 2}}
        path.write_text(json.dumps(spec))
        configs.append(path)
    before = dict(os.environ)
    trained = search.train(
        configs, data="synthetic:n_questions=120,n_models=4,dim=8", out=tmp_path / "t", quiet=True
    )
    assert dict(os.environ) == before
    assert [t.name for t in trained] == ["c0", "c1"] and {t.status for t in trained} == {"complete"}
    for t in trained:
        assert t.router_path == tmp_path / "t" / t.name / "router.pt" and t.router_path.is_file()
        assert 0.0 <= t.metrics["test"]["route_acc"] <= 1.0 and t.best_epoch in (1, 2)
    router = search.Router.load(trained[0].router_path)
    assert router.names == [f"synthetic-llm-{i:03d}" for i in range(4)]


@pytest.mark.slow
def test_two_runs_in_one_process_the_second_under_the_callers_ray(tmp_path: Path, monkeypatch) -> None:
    import ray
    from ray import tune

    seen: list[str | None] = []  # what Tune's controller reads when the experiment starts
    fit = tune.Tuner.fit

    def recording_fit(self):
        seen.append(os.environ.get("TUNE_MAX_PENDING_TRIALS_PG"))
        return fit(self)

    monkeypatch.setattr(tune.Tuner, "fit", recording_fit)
    space = write_space(tmp_path / "s.yaml", tiny_space(search={"num_samples": 3}))
    before = dict(os.environ)
    first = search.run(space, out=tmp_path / "a", export=tmp_path / "a.json", quiet=True)
    assert not ray.is_initialized()  # the run's own Ray is shut down
    assert dict(os.environ) == before

    ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False)
    try:
        mine = dict(os.environ)  # ray.init sets some (RAY_AUTH_MODE among them)
        second = search.run(space, out=tmp_path / "b", export=tmp_path / "b.json", num_samples=2, quiet=True)
        assert ray.is_initialized()  # the caller's Ray is used and left running
        assert dict(os.environ) == mine
    finally:
        ray.shutdown()
        os.environ.clear()  # what the test's own ray.init set must not reach later tests' processes
        os.environ.update(before)

    for result, n in ((first, 3), (second, 2)):
        assert isinstance(result.trials, pd.DataFrame) and len(result.trials) == n
        assert set(result.trials["state"]) == {"COMPLETE"}
        assert result.best is not None
        assert result.best.value == result.trials["value"].max()
        assert result.best.config["search_result"]["trial"] == result.best.number
        assert len(result.study.trials) == n
        table = result.routing_table
        assert table is not None and table["router"].iloc[0].startswith(f"best trial {result.best.number}")
        router = result.best_router
        assert router is not None and len(router.names) == 6
    assert search.RunResult.load(tmp_path / "a").best == first.best
    # a custom searcher may keep more than one pending trial, on every Ray we support
    assert len(seen) == 2 and all(v is not None and int(v) >= 2 for v in seen)


@pytest.mark.slow
def test_ctrl_c_in_a_notebook_saves_the_state_and_raises_keyboard_interrupt(tmp_path: Path) -> None:
    space = tiny_space(params={"epochs": 8}, search={"num_samples": 6})
    space["data"] = {"synthetic": {"n_questions": 1500, "n_models": 20, "dim": 64, "seed": 2}}
    path = write_space(tmp_path / "s.yaml", space)
    run = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import os, search
        before = dict(os.environ)
        try:
            search.run({str(path)!r}, out={str(run)!r}, export={str(tmp_path / "c.json")!r})
        except KeyboardInterrupt as exc:
            print("caught:", exc)
        print("kernel alive; environment as before:", dict(os.environ) == before)
        """
    )
    proc = start_python(["-c", script], tmp_path)
    wait_for(lambda: len(completed(run)) >= 1, 240, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    assert "caught: interrupted: state saved in" in out and "resume with resume=True" in out
    assert "kernel alive; environment as before: True" in out
    assert (run / "results.parquet").is_file() and not (tmp_path / "c.json").exists()


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path: Path, monkeypatch) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Python API") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", section.index("```python"))]
    code = code.replace('"spaces/residual.yaml"', repr(str(ROOT / "spaces" / "residual.yaml")))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README's example
    result, again = scope["result"], scope["again"]
    assert len(result.trials) == 4 and result.best == again.best
    assert {"router", "route_acc"} <= set(result.routing_table.columns)
    assert len(scope["router"].names) == 112


def test_a_message_from_deep_in_the_library_names_the_apis_argument(tmp_path) -> None:
    from search.data.data_options import DataOptions
    from search.driver.plan import RunOptions
    from search.options import as_argument

    assert as_argument("--address ray://x: cannot connect", RunOptions) == "address ray://x: cannot connect"
    assert as_argument("--split-seed must be", RunOptions, DataOptions) == "split_seed must be"
    assert as_argument("--nope 3: what", RunOptions) == "--nope 3: what"
    assert as_argument("resume with --out X --resume", RunOptions) == "resume with --out X --resume"
    space = write_space(tmp_path / "s.yaml", tiny_space())
    with pytest.raises(search.UserError, match=r"^storage 'relative/path': must be an absolute path"):
        search.run(space, storage="relative/path", quiet=True)
