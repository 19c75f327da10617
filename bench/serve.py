"""Serving throughput and latency: ``search serve`` under load on loopback, against the Router
called in this process.

    python bench/serve.py                      # a 384-d residual router with the real encoder
    python bench/serve.py --router runs/X/     # a run's recommended router
    python bench/serve.py --soak 20000         # and the soak: 10% malformed requests

The server runs as its own process (``python -m search serve ... --port 0``); the load generator
is this process: C keep-alive connections on raw asyncio sockets (cheap enough not to be what
is measured), each sending one request after another, bounded by a request count and a time
limit. For each kind (embedding requests, short text prompts) and each concurrency (1, 8, 64):
requests/s and latency p50/p99, and the in-process baseline: ``Router`` called one query at a
time here (the HTTP overhead is the ratio). The soak sends N requests, one in ten malformed, and
checks that every valid one got 200 and that the server's resident memory grew by less than
50 MB after its warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUESTIONS = ROOT.parent / "shared" / "data" / "mmlu_pro" / "questions.csv"

from router_models import create_model, save_router  # noqa: E402
from search.data.encode import load_encoder  # noqa: E402
from search.routing.router import Router  # noqa: E402
from tests.search.procs import start_python  # noqa: E402

SERVER_ENV: dict = {}
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
MALFORMED = [
    b"{not json",
    b'{"prompt": ""}',
    b'{"embedding": [1, 2, 3]}',
    b'{"prompts": 7}',
    b'{"query": "x"}',
    b"[]",
]


def make_bench_router(path: Path, num_models: int = 29) -> Path:
    """A residual router as the search exports for the built-in set (random weights: routing
    speed does not depend on them), recording the real encoder so it routes text."""
    identity = load_encoder(ENCODER, "{question}").identity
    torch.manual_seed(0)
    config = {"model_type": "residual_mlp", "model_config": {"hidden_dims": [512, 256, 128], "num_blocks": 2}}
    model = create_model(config, identity.dim, num_models)
    names = [f"llm-{j:02d}" for j in range(num_models)]
    save_router(
        model, path, model_names=names, routing={"offsets": [0.0] * num_models}, encoder=identity.to_dict()
    )
    return path


def questions() -> list[str]:
    """Real questions (from the shared set when it is here; else made-up ones)."""
    texts: list[str] = []
    if QUESTIONS.is_file():
        import csv

        csv.field_size_limit(1 << 24)
        with open(QUESTIONS, newline="") as f:
            texts = [row["question"].strip() for row in csv.DictReader(f) if row["question"].strip()]
    return texts or [f"What is {a} plus {b}, and why?" for a in range(50) for b in range(50)]


def prompts_under(router: Router, texts: list[str], max_tokens: int, n: int = 512) -> list[str]:
    """Up to ``n`` of ``texts`` that the router's encoder reads as at most ``max_tokens`` tokens."""
    tokenizer = router.encoder.model.tokenizer
    out = [t for t in texts[: 40 * n] if len(tokenizer(t)["input_ids"]) <= max_tokens]
    return out[:n]


# -- the load generator -------------------------------------------------------------------------


async def _worker(port: int, bodies: list[bytes], counter, n: int, deadline: float, out: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            i = next(counter)
            if i >= n or time.perf_counter() > deadline:
                return
            body = bodies[i % len(bodies)]
            head = (
                b"POST /v1/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            start = time.perf_counter()
            writer.write(head + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", raw).group(1))
            await reader.readexactly(length)
            out.append((i, int(raw[9:12]), time.perf_counter() - start))
    finally:
        writer.close()


async def load(
    port: int, bodies: list[bytes], concurrency: int, n: int, seconds: float
) -> tuple[list, float]:
    """``n`` requests (at most ``seconds``) over ``concurrency`` connections: [(i, status, s)], wall."""
    counter = itertools.count()
    out: list = []
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_worker(port, bodies, counter, n, deadline, out) for _ in range(concurrency)))
    return out, time.perf_counter() - start


def summary(results: list, wall: float) -> dict[str, float]:
    lat = np.array([r[2] for r in results]) * 1000
    return {
        "requests": len(results),
        "rps": len(results) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "non_200": sum(r[1] != 200 for r in results),
    }


def in_process(router: Router, kinds: dict[str, list], n: int) -> dict[str, float]:
    """Queries per second calling the (frozen) Router here, one query at a time, per kind."""
    out = {}
    for kind, items in kinds.items():
        count = n if kind == "embedding" else n // 8
        for i in range(-1, count):  # the first (-1) warms up
            if i == 0:
                start = time.perf_counter()
            if kind == "embedding":
                router.route_embeddings(items[i % len(items)][None])
            else:
                router.route([items[i % len(items)]])
        out[kind] = count / (time.perf_counter() - start)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", help="a router file or run dir (default: a fresh 384-d residual router)")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--requests", type=int, default=4000, help="per embedding point (text: a quarter)")
    ap.add_argument("--seconds", type=float, default=20.0, help="time limit per point")
    ap.add_argument("--soak", type=int, default=0, help="requests in the soak (0: none)")
    ap.add_argument("--batch-wait-ms", default=None, help="the server's --batch-wait-ms")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--server-env", action="append", default=[], help="KEY=VALUE for the server's environment"
    )
    ap.add_argument("--kinds", default="embedding,text,short", help="which request kinds to load")
    args = ap.parse_args()
    SERVER_ENV.update(kv.split("=", 1) for kv in args.server_env)

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    target = Path(args.router) if args.router else make_bench_router(tmp / "router.pt")
    router = Router.load(target)
    router.freeze()  # as the server does
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, router.embedding_dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    real = questions()
    items: dict[str, list] = {"embedding": list(X), "text": prompts_under(router, real, 64)}
    items["short"] = prompts_under(router, real, 24)
    items = {k: v for k, v in items.items() if k in args.kinds.split(",")}
    bodies = {
        k: [json.dumps({"embedding": x.tolist()} if k == "embedding" else {"prompt": x}).encode() for x in v]
        for k, v in items.items()
    }
    tok = router.encoder.model.tokenizer
    for k in ("text", "short"):
        if k in items:
            lengths = [len(tok(t)["input_ids"]) for t in items[k]]
            median = int(np.median(lengths))
            print(f"{k}: {len(lengths)} real questions, tokens median {median}, max {max(lengths)}")
    print(
        f"router {target} ({router.embedding_dim}-d, {len(router.names)} LLMs), "
        f"{torch.get_num_threads()} threads"
    )
    base = in_process(router, items, 2000)
    print("in process, one query at a time: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in base.items()))

    extra = ["--batch-wait-ms", args.batch_wait_ms] if args.batch_wait_ms is not None else []
    proc = start_python(["-m", "search", "serve", str(target), "--port", "0", *extra], ROOT, env=SERVER_ENV)
    line = proc.stdout.readline()
    port = int(re.search(r":(\d+) \(", line).group(1))
    server = psutil.Process(proc.pid)
    figures: dict = {"in_process": base, "points": []}
    try:
        for k, b in bodies.items():  # warm up
            asyncio.run(load(port, b, 8, 400 if k == "embedding" else 50, 10))
        print(
            f"{'kind':<10}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x in-proc':>10}{'non-200':>8}"
        )
        for kind, b in bodies.items():
            n = args.requests if kind == "embedding" else args.requests // 4
            for c in [int(x) for x in args.concurrency.split(",")]:
                results, wall = asyncio.run(load(port, b, c, n, args.seconds))
                s = summary(results, wall)
                ratio = s["rps"] / base[kind]
                figures["points"].append({"kind": kind, "concurrency": c, **s, "vs_in_process": ratio})
                print(
                    f"{kind:<10}{c:>5}{s['rps']:>10,.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
                    f"{ratio:>10.2f}{s['non_200']:>8}"
                )
        if args.soak:
            emb = bodies["embedding"]
            mixed = [MALFORMED[i % len(MALFORMED)] if i % 10 == 9 else emb[i % len(emb)] for i in range(1000)]
            asyncio.run(load(port, mixed, 8, 2000, 60))  # the soak's warm-up
            rss0 = server.memory_info().rss
            results, wall = asyncio.run(load(port, mixed, 8, args.soak, 600))
            rss1 = server.memory_info().rss
            valid = [r for r in results if (r[0] % 1000) % 10 != 9]
            bad = [r for r in results if (r[0] % 1000) % 10 == 9]
            soak = {
                "requests": len(results),
                "rps": len(results) / wall,
                "valid_not_200": sum(r[1] != 200 for r in valid),
                "malformed_4xx": sum(400 <= r[1] < 500 for r in bad),
                "malformed": len(bad),
                "any_5xx": sum(r[1] >= 500 for r in results),
                "rss_growth_mb": (rss1 - rss0) / 2**20,
                "rss_mb": rss1 / 2**20,
            }
            figures["soak"] = soak
            print(
                f"soak: {soak['requests']:,} requests ({soak['malformed']:,} malformed) in {wall:.1f} s: "
                f"valid not 200: {soak['valid_not_200']}, malformed answered 4xx: {soak['malformed_4xx']:,}, "
                f"5xx: {soak['any_5xx']}; RSS {soak['rss_mb']:.0f} MB, grew {soak['rss_growth_mb']:+.1f} MB"
            )
    finally:
        proc.terminate()
        proc.wait(30)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
