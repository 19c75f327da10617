"""What ``GET /metrics`` prints, in Prometheus text format (version 0.0.4).

Counters and histograms kept in plain dicts: the server is one process with one event loop,
which is the only writer, so no locks are needed and an update costs a dict lookup.

- ``router_search_requests_total{endpoint, code}``: requests by endpoint and status.
- ``router_search_errors_total{endpoint}``: those that ended in a 4xx or 5xx.
- ``router_search_request_seconds{endpoint}``: a latency histogram.
- ``router_search_queue_depth``: queries waiting for a batch now.
- ``router_search_batch_size``: a histogram of the batches the router ran.
- ``router_search_routed_total{llm}``: queries routed to each LLM.
- ``router_search_truncated_prompts_total``: prompts cut at the encoder's max length.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Sequence

PREFIX = "router_search_"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs) + "}" if pairs else ""


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class Histogram:
    """Cumulative buckets, a sum and a count."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last: above every bucket (+Inf only)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: Sequence[tuple[str, str]]) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else _number(bound)
            out.append(f"{name}_bucket{_labels([*labels, ('le', le)])} {running}")
        out.append(f"{name}_sum{_labels(labels)} {_number(self.total)}")
        out.append(f"{name}_count{_labels(labels)} {self.n}")
        return out


class Metrics:
    """The served router's counters (see the module doc); ``queue_depth`` is read when printed."""

    def __init__(self, llms: Sequence[str], queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batches = Histogram(BATCH_BUCKETS)
        self.routed = dict.fromkeys(llms, 0)
        self.truncated = 0
        self.queue_depth = queue_depth

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, str(status))] += 1
        if status >= 400:
            self.errors[endpoint] += 1
        hist = self.latency.get(endpoint)
        if hist is None:
            hist = self.latency[endpoint] = Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def batch(self, size: int) -> None:
        self.batches.observe(size)

    def route(self, names: Sequence[str]) -> None:
        for name in names:
            self.routed[name] = self.routed.get(name, 0) + 1

    def render(self) -> str:
        p = PREFIX
        out = [
            f"# HELP {p}requests_total Requests by endpoint and status code.",
            f"# TYPE {p}requests_total counter",
        ]
        out += [
            f"{p}requests_total{_labels([('endpoint', e), ('code', c)])} {n}"
            for (e, c), n in sorted(self.requests.items())
        ]
        out += [
            f"# HELP {p}errors_total Requests that ended in a 4xx or 5xx.",
            f"# TYPE {p}errors_total counter",
        ]
        out += [f"{p}errors_total{_labels([('endpoint', e)])} {n}" for e, n in sorted(self.errors.items())]
        out += [f"# HELP {p}request_seconds Request latency.", f"# TYPE {p}request_seconds histogram"]
        for e, hist in sorted(self.latency.items()):
            out += hist.lines(f"{p}request_seconds", [("endpoint", e)])
        out += [
            f"# HELP {p}queue_depth Queries waiting for a batch.",
            f"# TYPE {p}queue_depth gauge",
            f"{p}queue_depth {self.queue_depth()}",
            f"# HELP {p}batch_size Queries per batch the router ran.",
            f"# TYPE {p}batch_size histogram",
            *self.batches.lines(f"{p}batch_size", []),
            f"# HELP {p}routed_total Queries routed to each LLM.",
            f"# TYPE {p}routed_total counter",
            *(f"{p}routed_total{_labels([('llm', k)])} {n}" for k, n in self.routed.items()),
            f"# HELP {p}truncated_prompts_total Prompts cut at the encoder's max sequence length.",
            f"# TYPE {p}truncated_prompts_total counter",
            f"{p}truncated_prompts_total {self.truncated}",
        ]
        return "\n".join(out) + "\n"
