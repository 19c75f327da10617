"""Concurrent route requests gathered into one batch for the encoder and the router.

The event loop takes requests (``submit``); one task (``_loop``) takes what is waiting, up to
``max_batch`` queries (a request larger than that runs alone), waiting at most ``wait_s`` after
the first for more, and runs the batch in one worker thread: texts are embedded in one call of
the encoder, every query's logits come from one forward pass of the router, and each request's
decision is made at its own offsets. While a batch of texts runs, the next one gathers, so
throughput grows with concurrency; a batch of embeddings only (about a millisecond of router)
runs on the event loop itself, where a thread handoff would cost more than it frees. The queue
is bounded in queries: a request it cannot hold is refused (503 and ``Retry-After``) at once
rather than waiting without end. (A request's timeout cannot cut short a decision already
running; it ends the wait for one that has not started.)

Who calls what: the app's lifespan calls ``start`` and ``stop``; a request handler awaits
``submit``, which raises ``HTTPError`` (503 when full, 504 past its timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from search.routing.router import Decision, Router
from search.serve.counters import Metrics
from search.serve.http_errors import HTTPError

log = logging.getLogger("search.serve")
RETRY_AFTER_S = "1"


@dataclass
class Query:
    """One request's queries: texts or embeddings ``[n, dim]``, decided at ``offsets`` among the
    ``allowed`` LLMs (all when None)."""

    texts: list[str] | None
    X: np.ndarray | None
    offsets: list[float]
    allowed: torch.Tensor | None = None
    tasks: list[str | None] | None = None  # each query's task (checked), or None
    future: asyncio.Future[Answer] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.texts) if self.texts is not None else int(self.X.shape[0])  # type: ignore[union-attr]


@dataclass
class Answer:
    """A query's decision; for texts, whether each was cut at the encoder's max length."""

    decision: Decision
    truncated: list[bool] | None


class Batcher:
    """Gathers queries into batches (see the module doc)."""

    def __init__(
        self, router: Router, metrics: Metrics, max_batch: int, wait_s: float, queue_size: int
    ) -> None:
        self.router = router
        self.metrics = metrics
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.queue_size = queue_size
        self._pending: deque[Query] = deque()
        self._rows = 0  # queries waiting (not yet taken into a batch)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-batch")
        self._threads = torch.get_num_threads()

    @property
    def depth(self) -> int:
        return self._rows

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def submit(self, query: Query, timeout_s: float) -> Answer:
        """Queue ``query`` and wait for its answer.

        Raises:
            HTTPError: 503 (with Retry-After) when the queue cannot hold it; 504 when it takes
                longer than ``timeout_s``; 500 when the batch failed (the cause is logged).
        """
        assert self._wake is not None, "start the batcher first"
        if self._rows and self._rows + query.n > self.queue_size:
            raise HTTPError(
                503,
                f"overloaded: {self._rows} queries are waiting (at most {self.queue_size}); retry shortly",
                {"Retry-After": RETRY_AFTER_S},
            )
        query.future = asyncio.get_running_loop().create_future()
        self._pending.append(query)
        self._rows += query.n
        self._wake.set()
        try:
            return await asyncio.wait_for(query.future, timeout_s)
        except asyncio.TimeoutError:
            raise HTTPError(504, f"routing took longer than the request timeout ({timeout_s:g} s)") from None

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._gather(loop)
            batch = self._take()
            if not batch:
                continue
            self.metrics.batch(sum(q.n for q in batch))
            try:
                if any(q.texts is not None for q in batch):
                    answers = await loop.run_in_executor(self._pool, self._decide, batch)
                else:  # about a millisecond: here, a handoff to the thread and back cost more
                    answers = self._decide(batch)
            except Exception as exc:  # a bug, not a bad request: log it, fail the batch's requests
                log.exception("routing a batch of %d requests failed", len(batch))
                failed = HTTPError(500, f"internal error while routing ({type(exc).__name__})")
                for q in batch:
                    if q.future is not None and not q.future.done():
                        q.future.set_exception(failed)
                continue
            for q, answer in zip(batch, answers):
                self.metrics.route(answer.decision.names)
                self.metrics.truncated += sum(answer.truncated or ())
                if q.future is not None and not q.future.done():
                    q.future.set_result(answer)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait up to ``wait_s`` after now for a batch to fill."""
        assert self._wake is not None
        deadline = loop.time() + self.wait_s
        while self._rows < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take(self) -> list[Query]:
        """The waiting queries that fit one batch (at least one); those timed out are dropped."""
        batch: list[Query] = []
        rows = 0
        while self._pending:
            q = self._pending[0]
            if q.future is not None and q.future.done():  # its request timed out or went away
                self._pending.popleft()
                self._rows -= q.n
                continue
            if batch and rows + q.n > self.max_batch:
                break
            self._pending.popleft()
            self._rows -= q.n
            batch.append(q)
            rows += q.n
        return batch

    def _decide(self, batch: list[Query]) -> list[Answer]:
        """In the worker thread: embed every text at once, one forward pass, each request's own
        offsets."""
        router = self.router
        texts = [t for q in batch if q.texts is not None for t in q.texts]
        # The encoder's matmuls are large enough to share out; the router's are not: on 2 cores
        # a second thread made a batch of 8 slower and took the event loop's core.
        torch.set_num_threads(self._threads if texts else 1)
        if texts:
            embedded = router.embed(texts)
            cut = router.encoder.cut(texts)
        parts: list[np.ndarray] = []
        flags: list[list[bool] | None] = []
        at = 0
        for q in batch:
            if q.texts is not None:
                parts.append(embedded[at : at + q.n])
                flags.append(cut[at : at + q.n])
                at += q.n
            else:
                assert q.X is not None
                parts.append(q.X)
                flags.append(None)
        tasks = [t for q in batch for t in (q.tasks or [None] * q.n)]
        X = np.concatenate(parts) if len(parts) > 1 else parts[0]
        logits = router.logits(X, tasks=tasks if any(t is not None for t in tasks) else None)
        answers, row = [], 0
        for q, flag in zip(batch, flags):
            decision = router.decide_logits(logits[row : row + q.n], q.offsets, q.allowed)
            answers.append(Answer(decision, flag))
            row += q.n
        return answers
