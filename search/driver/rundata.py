"""The data a run trains on, loaded once in the driver and checked before anything is written:
one RouterData, or one per encoder when the space lets the search choose the encoder
(``data: {encoder: {choices: [...]}}``; each encoder's embeddings are made once, and cached).
Keyed by the encoder a trial chooses (``Space.encoder_of``), "" when there is no choice."""

from __future__ import annotations

from typing import Any

from search.data import RouterData, load_data
from search.data.fingerprint import data_record, difference
from search.data.leakage import find_leakage
from search.data.router_data import no_signal
from search.driver.plan import RunPlan
from search.errors import UserError
from search.log import logger
from search.metrics.direction import COST_METRICS

RunData = dict[str, RouterData]

log = logger("driver")


def load_run_data(plan: RunPlan) -> RunData:
    """Load and check the run's data (every check that needs the data, no write)."""
    space = plan.space
    encoders = space.data.encoders
    if len(encoders) > 1:
        datas = {e: load_data(plan.data_spec, plan.data_options.merged(encoder=e)) for e in encoders}
    else:
        datas = {"": load_data(plan.data_spec, plan.data_options)}
    for data in datas.values():
        data.check_embedding_dim(space.data.embedding_dim, f"{plan.space_path}: data.embedding_dim")
    data = first(datas)
    costly = [m for m in space.search.objectives if m in COST_METRICS]
    if not data.has_costs and (costly or plan.budget is not None):
        what = f"search.metric {costly[0]}" if costly else f"budget {plan.budget}"
        raise UserError(f"{what} needs data with costs; {data.source} has none (see the README, Costs)")
    reason = no_signal(data)
    if reason is not None:
        raise UserError(reason)
    for note in data.notes:
        log.info(note)
    leak = find_leakage(data).line()
    if leak is not None:
        log.info(leak)
    return datas


def first(datas: RunData) -> RouterData:
    """The data every encoder shares but its embeddings (labels, splits, costs): the first's."""
    return next(iter(datas.values()))


def check_resumed_data(plan: RunPlan, recorded: dict[str, Any] | None, datas: RunData) -> dict[str, Any]:
    """The data's fingerprint, checked against the one the run recorded (``recorded``, run.json's
    ``data``; on a resume).

    Raises:
        UserError: Other data than the run's (one line saying what differs).
    """
    data = first(datas)
    data_fp = data_record(data)
    if plan.resume and isinstance(recorded, dict):
        diff = difference(recorded, data_fp)
        if diff is not None:
            raise UserError(
                f"--resume: {plan.run_dir} was trained on other data: {diff} (the run's: "
                f"{recorded.get('source')}; given: {data.source}); resume with the run's data, or "
                "start a new run with another --out"
            )
        if recorded.get("source") != data.source:
            log.info(f"note: the data is the run's ({recorded.get('source')}), read from {data.source}")
    return data_fp
