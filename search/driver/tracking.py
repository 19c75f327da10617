"""Experiment tracking: every Optuna trial of a run, packed or not, as one MLflow run.

A Tune trial is a pack of Optuna trials here, so tracking follows the members, not Tune: the
bridge hands each member to :meth:`Tracker.trial` when it ends (its params, every epoch's
validation metrics, its state, value, pack, model type, node and device), and the run's
outputs to :meth:`Tracker.outputs` at the end. Nothing is written on the caller's thread: one
worker thread takes them from a queue and writes each trial in one batch, so tracking never
sits on an epoch's path. A tracking server that is down or refuses costs one warning line; the
search goes on without it.

Layout: one experiment named after the run dir; a parent run for the search (its space and
settings as params, the outputs as artifacts), each trial a child run (``mlflow.parentRunId``)
named ``trial N``, its metrics logged with the trial's own epochs as steps.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.errors import first_line
from search.log import logger

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
_DONE = object()  # the queue's last item

log = logger("driver")


class Tracker:
    """Writes a run's trials to MLflow from a thread of its own.

    Args:
        uri: A tracking URI (``http://host:5000``, ``sqlite:///mlflow.db``, ``databricks``) or
            a folder for a file store.
        experiment: The experiment's name (the run dir's).
        params: The search's own settings, logged on the parent run.
    """

    def __init__(self, uri: str, experiment: str, params: dict[str, Any]) -> None:
        if not uri:
            raise ValueError("uri must name a tracking store, got an empty string")
        self.uri = uri
        self.experiment = experiment
        self.params = params
        self.warning: str | None = None
        self.logged = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        thread = threading.Thread(target=self._work, name="mlflow-tracker", daemon=True)
        thread.start()
        self._thread: threading.Thread | None = thread

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher (and what it holds) to save the experiment: a copy is a
        # record of where tracking went, not a second writer.
        return {"uri": self.uri, "experiment": self.experiment, "params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, warning=None, logged=0, _queue=queue.Queue(), _thread=None)

    def trial(self, record: dict[str, Any]) -> None:
        """A member ended: ``record`` has number, state, values (by name), params, history (a list of
        (epoch, time, metrics)), start and end times, and tags."""
        self._queue.put(("trial", record))

    def outputs(self, paths: list[Path]) -> None:
        """The run's outputs, logged as artifacts of the parent run."""
        self._queue.put(("outputs", [p for p in paths if p.is_file()]))

    def close(self, timeout: float = 60.0) -> str | None:
        """Write what is queued (at most ``timeout`` seconds); the warning, if tracking failed."""
        if self._thread is None:  # an unpickled copy writes nothing
            return self.warning
        self._queue.put(_DONE)
        self._thread.join(timeout)
        if self._thread.is_alive() and self.warning is None:
            self.warning = f"--mlflow {self.uri}: still writing after {timeout:.0f} s; left behind"
        return self.warning

    # -- the worker thread -------------------------------------------------------------------
    def _work(self) -> None:
        try:
            client, parent = self._connect()
        except Exception as exc:  # noqa: BLE001  # any failure of the store: said once, not raised
            self._fail(exc)
            return
        while (item := self._queue.get()) is not _DONE:
            kind, payload = item
            try:
                if kind == "trial":
                    self._log_trial(client, parent, payload)
                else:
                    for path in payload:
                        client.log_artifact(parent.info.run_id, str(path))
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
                return
        try:
            client.set_terminated(parent.info.run_id, "FINISHED")
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def _connect(self) -> tuple[Any, Any]:
        # A server that is down answers at once instead of after minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        uri, artifacts = store_uri(self.uri)
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id
            if found
            else client.create_experiment(self.experiment, artifact_location=artifacts)
        )
        self.experiment_id = experiment_id
        parent = client.create_run(
            experiment_id, run_name=self.experiment, tags={"router_search.kind": "search"}
        )
        params = [Param(k, str(v)[:6000]) for k, v in self.params.items()]
        client.log_batch(parent.info.run_id, params=params)
        return client, parent

    def _log_trial(self, client: Any, parent: Any, r: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        tags = {"mlflow.parentRunId": parent.info.run_id, "state": r["state"], **r["tags"]}
        run = client.create_run(
            self.experiment_id,
            run_name=f"trial {r['number']}",
            start_time=int(r["start"] * 1000),
            tags={k: str(v) for k, v in tags.items() if v is not None},
        )
        metrics = [
            Metric(k, float(v), int(t * 1000), int(epoch))
            for epoch, t, row in r["history"]
            for k, v in row.items()
        ]
        for name, value in r["values"].items():
            metrics.append(Metric(name, float(value), int(r["end"] * 1000), int(r["epochs"])))
        params = [Param(k, str(v)) for k, v in r["params"].items()]
        for i in range(0, max(len(metrics), 1), 1000):  # MLflow takes 1,000 metrics a batch
            client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000], params=params if i == 0 else [])
        client.log_batch(run.info.run_id, tags=[RunTag("trial_number", str(r["number"]))])
        client.set_terminated(run.info.run_id, STATUS.get(r["state"], "FAILED"), int(r["end"] * 1000))
        self.logged += 1

    def _fail(self, exc: BaseException) -> None:
        line = first_line(exc, typed=True)[:300]
        self.warning = f"--mlflow {self.uri}: {line}; the search goes on without tracking"
        log.warning(f"warning: {self.warning}")
        # drain what is left, so close() does not wait on a dead store
        while self._queue.get() is not _DONE:
            pass


DATABASE = "mlflow.db"  # the database store made in a --mlflow folder
ARTIFACTS = "artifacts"  # and its artifacts' folder


def store_uri(uri: str) -> tuple[str, str | None]:
    """``(the tracking URI, the artifacts' location or None)`` of ``--mlflow``: a URI as it is;
    a folder holds a database store (``FOLDER/mlflow.db``, which MLflow's current client and UI
    open, unlike its retired file store) and the artifacts beside it (``FOLDER/artifacts``).
    Read it back with ``mlflow ui --backend-store-uri sqlite:///FOLDER/mlflow.db``."""
    if uri == "databricks" or "://" in uri:
        return uri, None
    folder = Path(uri).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / DATABASE}", (folder / ARTIFACTS).as_uri()


def trial_record(frozen: Any, live: Any, objectives: Sequence[str]) -> dict[str, Any]:
    """What :meth:`Tracker.trial` takes, from the bridge's frozen trial and live record: its
    value as ``value``, or with several ``objectives`` each as ``value_<objective>``."""
    names = ["value"] if len(objectives) == 1 else [f"value_{n}" for n in objectives]
    named = dict(zip(names, frozen.values or []))
    return {
        "number": frozen.number,
        "state": frozen.state.name,
        "values": named,
        "params": dict(frozen.params),
        "history": list(live.history),
        "epochs": live.epochs,
        "start": live.started,
        "end": time.time(),
        "tags": {
            "pack": live.pack,
            "model_type": frozen.user_attrs.get("model_type"),
            "node": live.node,
            "device": live.device,
            "best_epoch": live.best_epoch,
            "error": frozen.user_attrs.get("error"),
        },
    }
