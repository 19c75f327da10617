"""Routing per task (the mean score of the chosen LLM): users of multi-task routing sets read
results task by task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch


def per_task(
    outcomes: Mapping[str, torch.Tensor], tasks: np.ndarray, task_names: Sequence[str]
) -> list[dict[str, object]]:
    """One row per task that has questions here: its name, question count, and each router's
    routing accuracy on them (``outcomes``: name -> per question 1/0/NaN, aligned with
    ``tasks``; NaN questions are left out of the mean)."""
    rows: list[dict[str, object]] = []
    tasks = np.asarray(tasks)
    for t in np.unique(tasks).tolist():  # the tasks with questions here only: one pass each
        name = task_names[t]
        in_task = torch.from_numpy(tasks == t)
        row: dict[str, object] = {"task": name, "questions": int(in_task.sum())}
        for router, values in outcomes.items():
            v = values[in_task]
            v = v[~torch.isnan(v)]
            row[router] = float(v.mean()) if v.numel() else float("nan")
        rows.append(row)
    return rows


def format_tasks(
    rows: list[dict[str, object]], columns: Sequence[tuple[str, str]], label: str | None = None
) -> list[str]:
    """``rows`` as text lines; ``columns``: (key in a row, header); ``label``: a text key of the
    rows shown last (say, each task's best LLM)."""
    if not rows:
        return []
    width = max(len("task"), *(len(str(r["task"])) for r in rows))
    head = f"{'task':<{width}}  {'questions':>9}  " + "  ".join(f"{h:>{max(len(h), 6)}}" for _, h in columns)
    lines = [head + (f"  {label}" if label else "")]
    for r in rows:
        cells = "  ".join(f"{float(r[k]):>{max(len(h), 6)}.4f}" for k, h in columns)  # type: ignore[arg-type]
        tail = f"  {r[label]}" if label else ""
        lines.append(f"{str(r['task']):<{width}}  {int(r['questions']):>9}  {cells}{tail}")  # type: ignore[call-overload]
    return lines
