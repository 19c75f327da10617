"""``search serve``: the routing API and the routing proxy, over real HTTP on 127.0.0.1.

Most tests serve in a thread of the test process (``running``: a real socket, a real client);
the start-up failures go through the command line in-process; SIGTERM drains a real process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn", reason="the serve extra (uvicorn, httpx, orjson) is not installed")
import httpx  # noqa: E402

from search.__main__ import main  # noqa: E402
from search.routing.router import Router  # noqa: E402
from tests.search.encoders import WORDS, make_encoder  # noqa: E402
from tests.search.serving import (  # noqa: E402
    COSTS,
    NAMES,
    FakeBackend,
    make_router,
    running,
    start_server,
    write_backends,
)

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMPTS = [" ".join(WORDS[i : i + 4]) + "?" for i in range(8)]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return make_encoder(tmp_path_factory.mktemp("enc"), seed=0, dim=16, max_seq_length=16)


@pytest.fixture(scope="module")
def router_file(encoder: Path, tmp_path_factory) -> Path:
    return make_router(tmp_path_factory.mktemp("router") / "router.pt", encoder)


@pytest.fixture(scope="module")
def fakes():
    made = {
        "small-llm": FakeBackend("small"),
        "mid-llm": FakeBackend("mid"),
        "big-llm": FakeBackend("big"),
    }
    yield made
    for b in made.values():
        b.close()


@pytest.fixture(scope="module")
def served(router_file: Path, fakes, tmp_path_factory, monkeypatch_module):
    """The router served with a token and backends for all three LLMs."""
    monkeypatch_module.setenv("MID_KEY", "backend-key-mid")
    backends = write_backends(
        tmp_path_factory.mktemp("b") / "backends.yaml",
        {
            "small-llm": {"base_url": fakes["small-llm"].url, "model": "vendor/small"},
            "mid-llm": {"base_url": fakes["mid-llm"].url, "model": "vendor/mid", "api_key_env": "MID_KEY"},
            "big-llm": {"base_url": fakes["big-llm"].url, "model": "vendor/big", "timeout_s": 1},
        },
    )
    with running(router_file, backends=backends, token=TOKEN) as r:
        with httpx.Client(base_url=r.url, headers=AUTH, timeout=30) as client:
            yield r, client


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _one_line_error(resp: httpx.Response, status: int, pattern: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.text.count("\n") == 1 and resp.text.endswith("\n")
    err = resp.json()["error"]
    assert err["code"] == status
    assert pattern in err["message"], err["message"]
    assert "Traceback" not in resp.text and "/tmp" not in resp.text and ".pt" not in resp.text
    return err["message"]


def value(name: str, metrics: str) -> float:
    """A sample's value in a /metrics text (0 when absent)."""
    line = next((x for x in metrics.splitlines() if x.startswith(name + " ")), None)
    return float(line.split()[-1]) if line else 0.0


# -- the routing API ---------------------------------------------------------------------------


def test_routes_prompts_and_embeddings_as_the_router_does(served) -> None:
    r, client = served
    router = Router.load(r.router.path)
    want = router.decide(PROMPTS)
    got = client.post("/v1/route", json={"prompts": PROMPTS, "scores": True}).json()["routes"]
    assert [g["llm"] for g in got] == want.names
    assert [g["index"] for g in got] == want.index.tolist()
    assert [g["predicted_correctness"] for g in got] == pytest.approx(want.chosen_scores.tolist(), abs=1e-5)
    assert got[0]["scores"] == pytest.approx(dict(zip(NAMES, want.scores[0].tolist())), abs=1e-5)
    assert all(g["truncated"] is False for g in got)

    one = client.post("/v1/route", json={"prompt": PROMPTS[3]}).json()["routes"]
    assert [x["llm"] for x in one] == [want.names[3]] and "scores" not in one[0]

    X = np.random.default_rng(1).standard_normal((40, 16)).astype(np.float32)
    for extra, kwargs in [({}, {}), ({"plain": True}, {"plain": True}), ({"lambda": 0.2}, {"lam": 0.2})]:
        body = {"embeddings": X.tolist(), **extra}
        got = client.post("/v1/route", json=body).json()["routes"]
        assert [g["llm"] for g in got] == router.route_embeddings(X, **kwargs), extra
    single = client.post("/v1/route", json={"embedding": X[5].tolist()}).json()["routes"]
    assert single[0]["llm"] == router.route_embeddings(X[5:6])[0]


def test_a_budget_routes_at_the_lambda_the_val_curve_gives(served) -> None:
    r, client = served
    router = Router.load(r.router.path)
    X = np.random.default_rng(2).standard_normal((60, 16)).astype(np.float32)
    spent = []
    # the smallest lambda whose val cost meets the budget; the largest when none does
    for budget, lam in [(5.0, 0.0), (2.5, 0.05), (1.0, 0.2), (0.05, 1.0)]:
        got = client.post("/v1/route", json={"embeddings": X.tolist(), "budget": budget}).json()["routes"]
        assert router.lambda_for_budget(budget) == lam
        assert [g["llm"] for g in got] == router.route_embeddings(X, lam=lam)
        spent.append(np.mean([COSTS[g["index"]] for g in got]))
    assert spent == sorted(spent, reverse=True)  # a smaller budget never costs more


def test_prompts_longer_than_the_encoder_reads_are_cut_and_the_answer_says_so(served) -> None:
    _, client = served
    long = " ".join(WORDS * 10)  # far more than the encoder's 16 tokens
    got = client.post("/v1/route", json={"prompts": [long, "what is the sum"]}).json()
    assert [x["truncated"] for x in got["routes"]] == [True, False]
    assert got["truncated"]["count"] == 1 and got["truncated"]["max_seq_length"] == 16
    metrics = client.get("/metrics").text
    assert value("router_search_truncated_prompts_total", metrics) >= 1


def test_models_health_and_metrics(served) -> None:
    r, client = served
    models = client.get("/v1/models").json()
    ids = [m["id"] for m in models["data"]]
    assert ids == ["router", *NAMES]
    assert [m["cost"] for m in models["data"][1:]] == COSTS
    assert all(m["proxied"] for m in models["data"][1:])
    card = models["router"]
    assert card["file"] == "router.pt" and card["embedding_dim"] == 16 and card["budgets"] is True
    assert card["encoder"]["dim"] == 16 and len(card["encoder"]["sha256"]) == 64
    assert card["metadata"]["trial_number"] == 3
    assert httpx.get(r.url + "/healthz").json()["status"] == "ok"  # no token needed

    before = client.get("/metrics").text
    for _ in range(3):
        client.post("/v1/route", json={"prompt": "what is the sum"})
    client.post("/v1/route", json={"prompt": ""})
    text = client.get("/metrics").text

    ok = 'router_search_requests_total{endpoint="/v1/route",code="200"}'
    bad = 'router_search_requests_total{endpoint="/v1/route",code="400"}'
    assert value(ok, text) - value(ok, before) == 3
    assert value(bad, text) - value(bad, before) == 1
    assert value('router_search_errors_total{endpoint="/v1/route"}', text) >= 1
    assert 'router_search_request_seconds_bucket{endpoint="/v1/route",le="+Inf"}' in text
    assert "# TYPE router_search_request_seconds histogram" in text
    assert "router_search_queue_depth 0" in text and "router_search_batch_size_count" in text
    routed = sum(value(f'router_search_routed_total{{llm="{n}"}}', text) for n in NAMES)
    assert routed >= 3


BAD = [
    (b"{not json", 400, "not valid JSON"),
    (b"", 400, "body is empty"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (json.dumps({"prompt": 7}).encode(), 400, "prompt must be a string"),
    (json.dumps({"prompt": "   "}).encode(), 400, "prompt is empty"),
    (json.dumps({"prompts": []}).encode(), 400, "non-empty list"),
    (json.dumps({"prompts": ["ok", 3]}).encode(), 400, "prompts[1] must be a string"),
    (json.dumps({"embedding": [0.1] * 5}).encode(), 400, "has 5 values; this router reads 16-d"),
    (json.dumps({"embeddings": [[0.1] * 16, [0.1] * 15]}).encode(), 400, "embeddings[1] has 15 values"),
    (json.dumps({"embedding": ["1"] * 16}).encode(), 400, "numbers only"),
    (json.dumps({"embedding": [True] * 16}).encode(), 400, "numbers only"),
    (b'{"embedding": [' + b",".join([b"NaN"] * 16) + b"]}", 400, "not valid JSON"),
    (b'{"embedding": [' + b",".join([b"1e400"] * 16) + b"]}", 400, "infinity"),
    (json.dumps({"prompt": "a", "embedding": [0.0] * 16}).encode(), 400, "exactly one of"),
    (json.dumps({"query": "a"}).encode(), 400, "unknown field 'query'"),
    (json.dumps({"prompt": "a", "budget": -1}).encode(), 400, "budget must be a number >= 0"),
    (json.dumps({"prompt": "a", "budget": 1, "lambda": 1}).encode(), 400, "not both"),
    (json.dumps({"prompt": "a", "scores": "yes"}).encode(), 400, "scores must be true or false"),
    (json.dumps({"prompts": ["a"] * 300}).encode(), 413, "300 prompts in one request; at most 256"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nest"),
]


@pytest.mark.parametrize(("body", "status", "pattern"), BAD, ids=[b[2] for b in BAD])
def test_a_bad_request_gets_a_4xx_of_one_line_and_the_server_serves_on(served, body, status, pattern) -> None:
    _, client = served
    resp = client.post("/v1/route", content=body, headers={"content-type": "application/json"})
    _one_line_error(resp, status, pattern)
    assert client.post("/v1/route", json={"prompt": "what is the sum"}).status_code == 200


def test_limits_on_the_body_and_on_methods_and_paths(served) -> None:
    _, client = served
    big = json.dumps({"prompt": "a" * (2 << 20)})
    _one_line_error(client.post("/v1/route", content=big), 413, "at most 1,048,576")

    def chunks():
        for _ in range(40):
            yield b" " * 65536

    _one_line_error(client.post("/v1/route", content=chunks()), 413, "larger than 1,048,576 bytes")
    _one_line_error(client.get("/v1/route"), 405, "GET is not allowed on /v1/route")
    _one_line_error(client.get("/v2/anything"), 404, "no endpoint /v2/anything")


def test_a_router_without_costs_or_encoder_says_what_it_cannot_do(tmp_path: Path) -> None:
    path = make_router(tmp_path / "plain.pt", None, costs=False)
    with running(path) as r, httpx.Client(base_url=r.url) as client:
        body = {"embedding": [0.0] * 16, "budget": 1.0}
        _one_line_error(client.post("/v1/route", json=body), 400, "knows no LLM costs")
        _one_line_error(client.post("/v1/route", json={"prompt": "hi"}), 400, "routes embeddings only")
        assert client.get("/v1/models").json()["router"]["encoder"] is None
        assert client.post("/v1/route", json={"embedding": [0.0] * 16}).status_code == 200


def test_the_bearer_token_is_checked_and_never_echoed(served) -> None:
    r, _ = served
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": "Basic x"},
    ):
        resp = httpx.post(r.url + "/v1/route", json={"prompt": "hi"}, headers=headers)
        _one_line_error(resp, 401, "missing or wrong bearer token")
        assert resp.headers["www-authenticate"] == "Bearer" and TOKEN not in resp.text
        _one_line_error(httpx.get(r.url + "/metrics", headers=headers), 401, "bearer token")
    assert httpx.post(r.url + "/v1/route", json={"prompt": "hi"}, headers=AUTH).status_code == 200
    assert (
        "access-control-allow-origin"
        not in httpx.get(r.url + "/healthz", headers={"Origin": "http://x"}).headers
    )


def test_settings_refuse_a_public_host_without_a_token_and_bad_limits() -> None:
    from search.errors import UserError
    from search.serve.settings import ServeSettings

    assert ServeSettings().host == "127.0.0.1"
    ServeSettings(host="::1")
    ServeSettings(host="0.0.0.0", token="t")
    with pytest.raises(UserError, match=r"--host 0.0.0.0: serving beyond this machine needs a bearer token"):
        ServeSettings(host="0.0.0.0")
    for bad, match in [
        ({"max_batch": 0}, r"--max-batch 0: give a whole number >= 1"),
        ({"port": 70000}, r"--port 70000"),
        ({"request_timeout_s": 0}, r"--request-timeout 0: give a number > 0"),
        ({"token": "two words"}, r"bearer token is empty or holds whitespace"),
    ]:
        with pytest.raises(UserError, match=match):
            ServeSettings(**bad)
    assert "two" not in repr(ServeSettings(token="secret")) and "secret" not in repr(
        ServeSettings(token="secret")
    )


# -- batching, overload, timeouts --------------------------------------------------------------


def _slow(router: Router, seconds: float) -> None:
    """Make the served router's encoder take ``seconds`` per batch (a stand-in for a busy one)."""
    fast = router.embed

    def slow(texts):
        time.sleep(seconds)
        return fast(texts)

    router.embed = slow  # type: ignore[method-assign]


async def _post_many(url: str, bodies: list[dict], headers=None) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        return await asyncio.gather(*(client.post("/v1/route", json=b) for b in bodies))


def test_concurrent_requests_share_batches(router_file: Path) -> None:
    texts = [" ".join(WORDS[i % 9 : i % 9 + 3]) for i in range(32)]
    with running(router_file, max_batch=64, batch_wait_ms=20) as r:
        _slow(r.router, 0.05)
        got = asyncio.run(_post_many(r.url, [{"prompt": t} for t in texts]))
        text = httpx.get(r.url + "/metrics").text
    assert all(g.status_code == 200 for g in got)
    assert [g.json()["routes"][0]["llm"] for g in got] == Router.load(router_file).route(texts)
    batches = value("router_search_batch_size_count", text)
    assert batches < 32 / 4  # 32 concurrent requests took far fewer batches than requests


def test_a_full_queue_answers_503_with_retry_after_and_recovers(router_file: Path) -> None:
    with running(router_file, max_batch=1, batch_wait_ms=0, queue_size=2) as r:
        _slow(r.router, 0.05)
        got = asyncio.run(_post_many(r.url, [{"prompt": "what is the sum"}] * 20))
        codes = sorted(g.status_code for g in got)
        full = [g for g in got if g.status_code == 503]
        assert codes.count(200) >= 2 and full, codes
        assert full[0].headers["retry-after"] == "1"
        _one_line_error(full[0], 503, "overloaded")
        assert httpx.post(r.url + "/v1/route", json={"prompt": "what is the sum"}).status_code == 200


def test_a_request_past_its_timeout_gets_504_and_the_server_serves_on(router_file: Path) -> None:
    with running(router_file, request_timeout_s=0.2) as r:
        _slow(r.router, 0.5)
        resp = httpx.post(r.url + "/v1/route", json={"prompt": "what is the sum"}, timeout=10)
        _one_line_error(resp, 504, "longer than the request timeout (0.2 s)")
        del r.router.embed  # fast again
        time.sleep(0.5)  # once the slow batch is over
        assert httpx.post(r.url + "/v1/route", json={"prompt": "what is the sum"}).status_code == 200


# -- the routing proxy -------------------------------------------------------------------------


def _chat(text: str, **extra) -> dict:
    return {
        "model": "router",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": text},
        ],
        "temperature": 0.3,
        **extra,
    }


def test_the_proxy_routes_on_the_last_user_message_and_forwards_the_body(served, fakes) -> None:
    r, client = served
    router = Router.load(r.router.path)
    for text in PROMPTS[:4]:
        resp = client.post("/v1/chat/completions", json=_chat(text))
        assert resp.status_code == 200, resp.text
        llm = router.route([text])[0]
        assert resp.headers["x-router-llm"] == llm
        vendor = {"small-llm": "vendor/small", "mid-llm": "vendor/mid", "big-llm": "vendor/big"}[llm]
        assert resp.json()["model"] == vendor
        sent = fakes[llm].received[-1]
        assert sent == {**_chat(text), "model": vendor}  # unchanged but for the model
        assert fakes[llm].headers[-1].get("authorization") == (
            "Bearer backend-key-mid" if llm == "mid-llm" else None
        )  # the backend's own key, never the client's token
    resp = client.post("/v1/completions", json={"model": "small-llm", "prompt": "write code"})
    assert (
        resp.headers["x-router-llm"] == "small-llm"
        and fakes["small-llm"].received[-1]["prompt"] == "write code"
    )
    parts = _chat("x")
    parts["messages"][-1]["content"] = [{"type": "text", "text": PROMPTS[0]}]
    assert (
        client.post("/v1/chat/completions", json=parts).headers["x-router-llm"]
        == router.route([PROMPTS[0]])[0]
    )


def test_a_budget_in_the_model_name_routes_cheaper(served) -> None:
    _, client = served
    picked = {
        budget: [
            client.post("/v1/chat/completions", json={**_chat(t), "model": f"router:{budget}"}).headers[
                "x-router-llm"
            ]
            for t in PROMPTS
        ]
        for budget in (0.05, 100)
    }
    assert set(picked[0.05]) == {"small-llm"}  # the largest lambda: the cheapest LLM
    _one_line_error(
        client.post("/v1/chat/completions", json={**_chat("a"), "model": "router:cheap"}),
        400,
        "router:<budget>",
    )
    _one_line_error(
        client.post("/v1/chat/completions", json={**_chat("a"), "model": "gpt-9"}),
        404,
        'model "gpt-9" is not served',
    )
    _one_line_error(
        client.post("/v1/chat/completions", json={"model": "router", "messages": []}), 400, "messages"
    )
    only_system = {"model": "router", "messages": [{"role": "system", "content": "x"}]}
    _one_line_error(client.post("/v1/chat/completions", json=only_system), 400, "no user message")


def test_streamed_answers_pass_through_as_they_arrive(served) -> None:
    _, client = served
    arrivals, chunks = [], []
    with client.stream(
        "POST", "/v1/chat/completions", json={**_chat("hi"), "model": "big-llm", "stream": True}
    ) as resp:
        assert resp.status_code == 200 and resp.headers["x-router-llm"] == "big-llm"
        assert resp.headers["content-type"].startswith("text/event-stream")
        for chunk in resp.iter_bytes():
            arrivals.append(time.monotonic())
            chunks.append(chunk)
    body = b"".join(chunks).decode()
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    assert [e["choices"][0]["delta"]["content"] for e in events] == ["hello", "from", "big"]
    assert body.rstrip().endswith("data: [DONE]")
    assert len(arrivals) >= 3 and arrivals[-1] - arrivals[0] > 0.1  # not gathered into one piece


def test_a_backend_that_fails_hangs_or_is_down_gives_502_or_504_naming_it(
    router_file: Path, tmp_path: Path
) -> None:
    failing, hanging, rejecting = (
        FakeBackend("f", "fail"),
        FakeBackend("h", "hang"),
        FakeBackend("r", "reject"),
    )
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{free.getsockname()[1]}/v1"
    free.close()
    try:
        backends = write_backends(
            tmp_path / "b.yaml",
            {
                "small-llm": {"base_url": failing.url, "model": "m"},
                "mid-llm": {"base_url": hanging.url, "model": "m", "timeout_s": 0.5},
                "big-llm": {"base_url": down, "model": "m"},
            },
        )
        with running(router_file, backends=backends) as r, httpx.Client(base_url=r.url, timeout=30) as client:
            msg = _one_line_error(
                client.post("/v1/chat/completions", json={**_chat("a"), "model": "small-llm"}),
                502,
                "backend 'small-llm'",
            )
            assert "failed (500): the model crashed" in msg
            start = time.monotonic()
            _one_line_error(
                client.post("/v1/chat/completions", json={**_chat("a"), "model": "mid-llm"}),
                504,
                "did not answer within 0.5 s",
            )
            assert time.monotonic() - start < 5
            streamed = {**_chat("a"), "model": "mid-llm", "stream": True}
            _one_line_error(client.post("/v1/chat/completions", json=streamed), 504, "backend 'mid-llm'")
            _one_line_error(
                client.post("/v1/completions", json={"model": "big-llm", "prompt": "a"}),
                502,
                "cannot be reached",
            )
            failing.mode = "reject"  # the backend's 4xx about the request itself is passed on
            resp = client.post("/v1/chat/completions", json={**_chat("a"), "model": "small-llm"})
            assert resp.status_code == 400 and resp.json()["error"]["message"] == "max_tokens is too large"
            assert client.get("/healthz").status_code == 200
    finally:
        for b in (failing, hanging, rejecting):
            b.close()


# -- start-up and shutdown ---------------------------------------------------------------------


def test_start_up_failures_are_one_line_and_exit_2(
    router_file: Path, encoder: Path, tmp_path: Path, capsys
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    other = make_encoder(tmp_path / "other", seed=5, dim=16, max_seq_length=16)
    gone = tmp_path / "gone"
    import shutil

    shutil.copytree(encoder, gone)
    orphan = make_router(tmp_path / "orphan.pt", gone)
    shutil.rmtree(gone)
    bad_backends = write_backends(
        tmp_path / "bb.yaml", {"huge-llm": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}}
    )
    bad_url = write_backends(tmp_path / "bu.yaml", {"mid-llm": {"base_url": "ftp://x", "model": "m"}})
    no_key = write_backends(
        tmp_path / "nk.yaml",
        {"mid-llm": {"base_url": "http://h/v1", "model": "m", "api_key_env": "NO_SUCH_KEY_VAR"}},
    )
    cases = [
        ([str(tmp_path / "missing.pt")], "missing.pt"),
        ([str(router_file), "--port", str(port)], f"127.0.0.1:{port} is in use by another program"),
        ([str(router_file), "--encoder", str(other)], "not the encoder"),
        ([str(orphan)], "not found on this machine"),
        ([str(router_file), "--backends", str(bad_backends)], "backends.huge-llm: not an LLM of this router"),
        ([str(router_file), "--backends", str(bad_url)], "base_url: give an http:// or https:// URL"),
        ([str(router_file), "--backends", str(no_key)], "NO_SUCH_KEY_VAR is not set"),
        ([str(router_file), "--backends", str(tmp_path / "nope.yaml")], "no such file"),
        ([str(router_file), "--host", "0.0.0.0"], "needs a bearer token"),
        ([str(router_file), "--max-batch", "0"], "--max-batch 0"),
        ([str(router_file), "--token-file", str(tmp_path / "none")], "--token-file"),
    ]
    try:
        for args, pattern in cases:
            assert main(["serve", *args]) == 2, args
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith("error: ") and pattern in err, (args, err)
    finally:
        busy.close()


@pytest.mark.slow
def test_sigterm_finishes_requests_in_flight_then_exits_0(router_file: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    server = start_server(
        [str(router_file), "--token-file", str(token_file), "--batch-wait-ms", "1500"], tmp_path
    )
    try:
        assert "bearer token required" in server.first_line and TOKEN not in server.first_line
        results: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    server.url + "/v1/route", json={"prompt": "what is the sum"}, headers=AUTH, timeout=30
                )
            )
        )
        sender.start()
        time.sleep(0.5)  # the request waits in the batcher (1.5 s) when the signal lands
        server.proc.send_signal(signal.SIGTERM)
        sender.join(30)
        # it exits on its own: a second signal (stop() would send one to a process still
        # shutting down) would test something else, what a second SIGTERM does
        server.proc.wait(30)
        rc, out, err = server.stop()
        assert results and results[0].status_code == 200, (out, err)
        assert results[0].json()["routes"][0]["llm"] in NAMES
        assert rc == 0, err
        assert "stopped: requests in flight were answered" in out and "Traceback" not in err
        assert TOKEN not in out + err
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/healthz")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_a_body_that_never_finishes_gets_408_and_others_are_served_meanwhile(router_file: Path) -> None:
    with running(router_file, request_timeout_s=0.5) as r:
        port = int(r.url.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b'POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt": ')
        assert httpx.post(r.url + "/v1/route", json={"prompt": "what is the sum"}).status_code == 200
        slow.settimeout(10)
        reply = slow.recv(4096).decode()
        slow.close()
    assert reply.startswith("HTTP/1.1 408") and "the body did not arrive within 0.5 s" in reply


def test_cors_only_when_asked_and_the_token_from_a_file_or_the_environment(
    router_file: Path, tmp_path: Path
) -> None:
    from search.serve.server import read_token
    from search.serve.settings import TOKEN_ENV

    with running(router_file, cors_origins=("http://app.example",), token=TOKEN) as r:
        pre = httpx.options(
            r.url + "/v1/route",
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://app.example"
        got = httpx.post(
            r.url + "/v1/route", json={"prompt": "hi"}, headers={**AUTH, "Origin": "http://app.example"}
        )
        assert got.status_code == 200 and got.headers["access-control-allow-origin"] == "http://app.example"
        other = httpx.post(
            r.url + "/v1/route", json={"prompt": "hi"}, headers={**AUTH, "Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
    (tmp_path / "t").write_text("from-file\nignored\n")
    assert read_token(str(tmp_path / "t"), {TOKEN_ENV: "from-env"}) == "from-file"
    assert read_token(None, {TOKEN_ENV: "from-env"}) == "from-env"
    assert read_token(None, {}) is None


def test_a_local_copy_of_the_recorded_encoder_is_accepted(
    router_file: Path, encoder: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy-of-encoder"
    shutil.copytree(encoder, copy)
    with running(router_file, encoder=copy) as r:
        got = httpx.post(r.url + "/v1/route", json={"prompts": PROMPTS}).json()["routes"]
        _one_line_error(
            httpx.post(r.url + "/v1/route", json={"prompt": "a", "plain": True, "lambda": 1}),
            400,
            "plain routes at zero offsets",
        )
    assert [g["llm"] for g in got] == Router.load(router_file).route(PROMPTS)


def test_a_task_prior_reads_each_items_task_over_http(tmp_path: Path) -> None:
    from router_models import create_model, save_router

    model = create_model(
        {
            "model_type": "group_mean",
            "model_config": {"prior": "task", "task_names": ["a", "b"], "prior_strength": 0},
        },
        16,
        3,
    )
    import torch

    X = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    Y = torch.zeros(40, 3)
    Y[:20, 0], Y[20:, 2] = 1, 1  # small-llm answers task a, big-llm task b
    model.fit(X, Y, torch.ones(40, 3, dtype=torch.bool), torch.tensor([0] * 20 + [1] * 20))
    path = tmp_path / "tasks.pt"
    save_router(model, path, model_names=NAMES, task_names=["a", "b"])
    rows = X[:2].tolist()
    with running(path) as srv:
        card = httpx.get(srv.url + "/v1/models").json()["router"]
        assert card["tasks"] == ["a", "b"] and card["reads_tasks"] is True
        got = httpx.post(srv.url + "/v1/route", json={"embeddings": rows, "tasks": ["b", "a"]}).json()
        assert [r["llm"] for r in got["routes"]] == ["big-llm", "small-llm"]
        got = httpx.post(srv.url + "/v1/route", json={"embeddings": rows, "task": "b"}).json()
        assert [r["llm"] for r in got["routes"]] == ["big-llm", "big-llm"]
        untold = httpx.post(srv.url + "/v1/route", json={"embeddings": rows}).json()
        assert [r["llm"] for r in untold["routes"]] == srv.router.route_embeddings(np.array(rows, np.float32))
        for body, message in (
            ({"embeddings": rows, "task": "c"}, "unknown task 'c'; this router's tasks: a, b"),
            (
                {"embeddings": rows, "tasks": ["a"]},
                "tasks must be a list of 2 task names or nulls, one per item",
            ),
            ({"embeddings": rows, "task": "a", "tasks": ["a", "b"]}, "give task or tasks, not both"),
            ({"embeddings": rows, "tasks": ["a", 3]}, "tasks must hold strings or nulls only"),
        ):
            bad = httpx.post(srv.url + "/v1/route", json=body)
            assert bad.status_code == 400 and bad.json()["error"]["message"] == message
