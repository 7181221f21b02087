"""`everylabel serve`: the HTTP API against the library, limits and overload, faults, disconnects, SIGTERM."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient

from everylabel import Classifier, create_model
from everylabel.errors import InputError
from everylabel.serving import ServeSettings, create_app
from tests import oracle

LABELS = ["sports", "food", "weather"]
TEXTS = ["the match ended with a late goal", "bread and soup for dinner", "rain and wind all day", ""]


@pytest.fixture(scope="module")
def model_dir(backbone_dir, tmp_path_factory) -> Path:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    folder = tmp_path_factory.mktemp("serve-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(model_dir: Path) -> Classifier:
    return Classifier.from_pretrained(model_dir, device="cpu", backend="torch")


class Gate:
    """Wraps a classifier's model call: counts the rows it runs, can hold it, can fail on a condition."""

    def __init__(self, classifier: Classifier, fail: Callable[[int], bool] | None = None) -> None:
        self.classifier = classifier
        self.original = classifier.backend.run
        self.fail = fail
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.batches: list[int] = []  # rows per model call

    def run_rows(self, ids: np.ndarray, mask: np.ndarray, slots: int, *rest: Any) -> np.ndarray:
        self.entered.set()
        self.open.wait(30)
        self.batches.append(len(ids))
        if self.fail is not None and self.fail(slots):
            raise RuntimeError("injected fault")
        return self.original(ids, mask, slots, *rest)


@pytest.fixture
def serve(classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """serve(settings=..., fail=..., load=...) -> (TestClient, Gate), the app started and ready."""
    clients: list[TestClient] = []

    def start(settings: ServeSettings | None = None, fail: Any = None, load: Any = None, ready: bool = True):
        gate = Gate(classifier, fail)
        monkeypatch.setattr(classifier.backend, "run", gate.run_rows)
        client = TestClient(create_app(load or (lambda: classifier), settings))
        client.__enter__()
        clients.append(client)
        if ready:
            wait_for(lambda: client.get("/health").status_code == 200)
        return client, gate

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def in_thread(call: Callable[[], Any]) -> Callable[[], Any]:
    """Run `call` in a thread; returns a function that joins it and gives its result."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()))
    thread.start()

    def join() -> Any:
        thread.join(60)
        return box[0]

    return join


def assert_same(answer: list[dict], expected: list[Any]) -> None:
    """The server's results are `classify`'s: the same fields, scores within 1e-6 (a text's scores
    move in their last bits with the texts batched beside it)."""
    assert len(answer) == len(expected)
    numeric = ("scores", "nested", "retriever_scores")
    for got, result in zip(answer, expected, strict=True):
        want = result.to_dict()
        assert {k: v for k, v in got.items() if k not in numeric} == {
            k: v for k, v in want.items() if k not in numeric
        }
        for key in numeric:
            assert_close(got.get(key), want.get(key))


def assert_close(got: Any, want: Any) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for key, value in want.items():
            assert_close(got[key], value)
    else:
        assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"threshold": {"sports": 0.1, "food": 0.9, "weather": 0.5}, "prompt": "Topic:"},
        {"multi_label": False},
        {"truncation": "chunk", "aggregation": "mean"},
        {"label_order": "robust", "multi_label": False},
    ],
)
def test_answers_equal_the_classifier(serve, classifier: Classifier, options: dict) -> None:
    client, _ = serve()
    response = client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS, **options})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "default"
    assert_same(body["results"], classifier.classify(TEXTS, LABELS, **options))


def test_per_text_labels_and_hierarchies(serve, classifier: Classifier) -> None:
    client, _ = serve()
    per_text = [["sports", "music"], ["food"], ["weather", "sports", "food"], ["x"]]
    hierarchy = {"leisure": ["sports", "music"], "home": {"kitchen": ["food"]}}
    for labels in (per_text, hierarchy):
        response = client.post("/v1/classify", json={"texts": TEXTS, "labels": labels})
        assert response.status_code == 200
        assert_same(response.json()["results"], classifier.classify(TEXTS, labels))
    assert "nested" in response.json()["results"][0]


def test_health_is_503_until_loaded_and_warmed(serve, classifier: Classifier) -> None:
    release = threading.Event()

    def slow_load() -> Classifier:
        release.wait(30)
        return classifier

    client, gate = serve(load=slow_load, ready=False)
    assert client.get("/health").json() == {"status": "loading"}
    assert client.get("/health").status_code == 503
    refused = client.post("/v1/classify", json={"texts": ["a"], "labels": LABELS})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert gate.batches == []
    release.set()
    wait_for(lambda: client.get("/health").status_code == 200)
    assert gate.batches, "the warm-up pass ran before /health said ready"


def test_a_model_that_fails_to_load_is_reported(serve) -> None:
    def broken() -> Classifier:
        raise OSError("no such checkpoint")

    client, _ = serve(load=broken, ready=False)
    wait_for(lambda: client.get("/health").json()["status"] == "failed")
    health = client.get("/health")
    assert health.status_code == 503 and "no such checkpoint" in health.json()["error"]


def test_info_metrics_and_docs(serve, classifier: Classifier) -> None:
    client, _ = serve(ServeSettings(model="tiny", max_queue_texts=100, max_request_texts=10))
    info = client.get("/info").json()
    assert info["model"] == "tiny" and info["status"] == "ready"
    assert (info["architecture"], info["backend"], info["device"], info["dtype"]) == (
        "uni-encoder", "torch", "cpu", "fp32",
    )  # fmt: skip
    assert info["window"] == classifier.max_length and info["max_request_texts"] == 10
    client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS})
    client.post("/v1/classify", json={"texts": [1], "labels": LABELS})
    metrics = client.get("/metrics").text
    for line in (
        'everylabel_requests_total{endpoint="classify",status="200"} 1.0',
        'everylabel_requests_total{endpoint="classify",status="422"} 1.0',
        "everylabel_texts_total 4.0",
        "everylabel_queue_texts 0.0",
        "everylabel_request_seconds_count 2.0",
        "everylabel_queue_seconds_count 1.0",
        "everylabel_batch_texts_count",
        "everylabel_batch_tokens_count",
        "everylabel_texts_per_second",
    ):
        assert line in metrics, line
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"texts", "labels", "threshold", "truncation"} <= set(body["properties"])
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": ["ok", 5], "labels": LABELS}, "texts[1]"),
        ({"texts": ["ok"], "labels": ["a", ""]}, "labels[1]"),
        ({"texts": ["ok"], "labels": LABELS, "threshold": {"spots": 0.2}}, "threshold"),
        ({"texts": ["ok"], "labels": LABELS, "truncation": "cut"}, "truncation"),
        ({"texts": ["ok"], "labels": [["a"], ["b"]]}, "labels"),
    ],
)
def test_bad_input_is_422_with_the_library_message(
    serve, classifier: Classifier, body: dict, field: str
) -> None:
    client, _ = serve()
    response = client.post("/v1/classify", json=body)
    assert response.status_code == 422
    with pytest.raises(InputError) as expected:
        classifier.classify(**body)
    assert response.json() == {"detail": str(expected.value), "field": expected.value.field}
    assert expected.value.field.startswith(field)
    good = client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS})
    assert good.status_code == 200  # nothing else is affected


def test_malformed_bodies_are_422(serve) -> None:
    client, _ = serve()
    for content, field in ((b"{not json", "body"), (b"[1, 2]", "body"), (b'{"labels": ["a"]}', "texts")):
        response = client.post("/v1/classify", content=content)
        assert response.status_code == 422 and response.json()["field"] == field
    unknown = client.post("/v1/classify", json={"texts": ["a"], "labels": ["b"], "labls": 1})
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("labls: unknown field")


def test_too_many_texts_or_too_large_a_body_is_413(serve) -> None:
    client, gate = serve(ServeSettings(max_queue_texts=8, max_request_texts=3, max_body_bytes=400))
    warm = len(gate.batches)
    many = client.post("/v1/classify", json={"texts": ["a"] * 4, "labels": LABELS})
    assert many.status_code == 413 and "at most 3" in many.json()["detail"]
    large = client.post("/v1/classify", json={"texts": ["word " * 100], "labels": LABELS})
    assert large.status_code == 413 and "body" in large.json()["detail"]
    assert len(gate.batches) == warm  # neither reached the model


def test_a_full_queue_is_429_with_retry_after_then_serves_again(serve, classifier: Classifier) -> None:
    client, gate = serve(ServeSettings(max_queue_texts=4, max_request_texts=4))
    gate.open.clear()
    gate.entered.clear()
    first = in_thread(lambda: client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS}))
    assert gate.entered.wait(30)
    refused = client.post("/v1/classify", json={"texts": ["one more"], "labels": LABELS})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1 and "queue is full" in refused.json()["detail"]
    gate.open.set()
    assert first().status_code == 200
    again = client.post("/v1/classify", json={"texts": ["one more"], "labels": LABELS})
    assert again.status_code == 200
    assert 'status="429"} 1.0' in client.get("/metrics").text


def test_concurrent_requests_share_batches(serve, classifier: Classifier) -> None:
    client, gate = serve()
    gate.open.clear()
    gate.entered.clear()
    blocker = in_thread(lambda: client.post("/v1/classify", json={"texts": ["hold"], "labels": LABELS}))
    assert gate.entered.wait(30)
    calls = [TEXTS[:3], ["rain again", "a concert tonight"], ["salt"]]
    joins = [
        in_thread(lambda t=t: client.post("/v1/classify", json={"texts": t, "labels": LABELS})) for t in calls
    ]
    wait_for(lambda: client.app.state.service.scheduler.queued_texts == 7)
    before = len(gate.batches)
    gate.open.set()
    assert blocker().status_code == 200
    responses = [join() for join in joins]
    assert gate.batches[before:] == [1, 6]  # the blocker, then the three requests in one batch
    for response, texts in zip(responses, calls, strict=True):
        assert response.status_code == 200
        assert_same(response.json()["results"], classifier.classify(texts, LABELS))


def test_an_internal_error_fails_only_its_request(serve, classifier: Classifier) -> None:
    client, gate = serve(fail=lambda slots: slots == 4)  # a request with 4 labels breaks the model
    gate.open.clear()
    gate.entered.clear()
    blocker = in_thread(lambda: client.post("/v1/classify", json={"texts": ["hold"], "labels": LABELS}))
    assert gate.entered.wait(30)
    bad = in_thread(lambda: client.post("/v1/classify", json={"texts": ["x"], "labels": [*LABELS, "music"]}))
    good = in_thread(lambda: client.post("/v1/classify", json={"texts": TEXTS[:2], "labels": LABELS}))
    wait_for(lambda: client.app.state.service.scheduler.queued_texts == 4)
    gate.open.set()
    assert blocker().status_code == 200
    failed, served = bad(), good()
    assert failed.status_code == 500 and "RuntimeError: injected fault" in failed.json()["detail"]
    assert served.status_code == 200
    assert_same(served.json()["results"], classifier.classify(TEXTS[:2], LABELS))
    assert client.post("/v1/classify", json={"texts": ["later"], "labels": LABELS}).status_code == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_client_that_disconnects_has_its_texts_dropped(classifier: Classifier, monkeypatch) -> None:
    import uvicorn

    gate = Gate(classifier)
    monkeypatch.setattr(classifier.backend, "run", gate.run_rows)
    app = create_app(lambda: classifier)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started and httpx.get(f"{base}/health").status_code == 200)
        gate.open.clear()
        gate.entered.clear()
        blocker = in_thread(
            lambda: httpx.post(f"{base}/v1/classify", json={"texts": ["hold"], "labels": LABELS})
        )
        assert gate.entered.wait(30)
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            httpx.post(f"{base}/v1/classify", json={"texts": TEXTS[:3], "labels": LABELS}, timeout=0.5)
        closed = 'everylabel_requests_total{endpoint="classify",status="499"} 1.0'
        wait_for(lambda: closed in httpx.get(f"{base}/metrics").text)  # the server saw it go
        before = len(gate.batches)
        gate.open.set()
        assert blocker().status_code == 200
        wait_for(lambda: "everylabel_texts_dropped_total 3.0" in httpx.get(f"{base}/metrics").text)
        assert gate.batches[before:] == [1]  # the blocker only: the dropped texts never ran
        later = httpx.post(f"{base}/v1/classify", json={"texts": ["later"], "labels": LABELS})
        assert later.status_code == 200
    finally:
        gate.open.set()
        server.should_exit = True
        thread.join(30)


def test_sigterm_finishes_what_is_in_flight_then_exits(model_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "everylabel", "serve", "--model", str(model_dir), "--backend", "torch",
        "--port", str(port), "--batch-size", "1", "--max-request-texts", "400", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _health(base) == 200, seconds=60)
        texts = [f"text number {i} about rain and football" for i in range(400)]
        body = {"texts": texts, "labels": LABELS}
        answer = in_thread(lambda: httpx.post(f"{base}/v1/classify", json=body, timeout=60))
        wait_for(lambda: "everylabel_queue_texts 400.0" in httpx.get(f"{base}/metrics").text)
        process.terminate()  # SIGTERM
        response = answer()
        assert response.status_code == 200
        assert len(response.json()["results"]) == 400
        assert process.wait(timeout=60) == 0  # a clean drain is a clean exit, not death by signal
        assert _health(base) is None  # no longer listening
    finally:
        process.kill()
        stderr = process.communicate()[1].decode()
    assert "Waiting for application shutdown" in stderr and "Application shutdown complete" in stderr
    assert "Traceback" not in stderr


def _health(base: str) -> int | None:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code
    except httpx.TransportError:
        return None


def test_settings_refuse_a_request_limit_above_the_queue() -> None:
    with pytest.raises(InputError, match="max_request_texts"):
        ServeSettings(max_queue_texts=4, max_request_texts=5)


def test_the_cli_parses_serve_options() -> None:
    from everylabel.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--port", "9000", "--max-queue-texts", "64", "--backend", "onnx"]
    )
    assert (args.port, args.max_queue_texts, args.backend, args.max_request_texts) == (9000, 64, "onnx", None)
    assert json.loads(json.dumps(vars(args)))  # plain values only


def test_a_batch_is_the_oldest_input_and_the_nearest_lengths() -> None:
    from everylabel.serving.scheduler import nearest_lengths

    assert nearest_lengths([50, 10, 48, 300, 52], 3, 10**6) == [0, 2, 4]
    assert nearest_lengths([50, 10, 48, 300, 52], 5, 160) == [0, 2, 4]  # 300 breaks the token budget
    assert nearest_lengths([500, 10], 4, 100) == [0]  # the oldest goes even alone
