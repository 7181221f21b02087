"""The server bounds the work one request can cause, refuses at once what is over a bound, keeps
serving everyone else meanwhile, and reads hostile bodies as bad input."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("fastapi")

from everylabel import Classifier, InputError
from everylabel.serving import ServeSettings
from tests.test_serve import LABELS, TEXTS, assert_same, classifier, in_thread, model_dir, serve, wait_for

__all__ = ["classifier", "model_dir", "serve"]  # the fixtures of test_serve.py, used here too


def test_overlap_near_the_window_is_refused_by_the_library(classifier: Classifier) -> None:
    text = "word " * 2000
    with pytest.raises(InputError, match="overlap"):  # a window per token before
        classifier.prepare([text], LABELS, truncation="chunk", overlap=400)
    windows = classifier.prepare([text], LABELS, truncation="chunk", overlap=None).plans[0].windows[0]
    assert len(windows) < 2 * 2000 / 100


def test_a_request_over_a_work_bound_gets_413_at_once(serve, classifier: Classifier) -> None:
    settings = ServeSettings(max_labels=8, max_request_passes=6, max_request_tokens=2000)
    client, gate = serve(settings)
    many_labels = {"texts": ["a"], "labels": [f"label {i}" for i in range(9)]}
    robust = {"texts": ["a"], "labels": LABELS, "label_order": "robust"}  # 3 labels x 4 orders
    windows = {"texts": ["word " * 3000], "labels": LABELS, "truncation": "chunk"}  # 8 windows
    tokens = {"texts": ["word " * 600] * 5, "labels": LABELS}  # 5 passes of a whole window
    before = len(gate.batches)
    for body, field, what in (
        (many_labels, "labels[0]", "candidate labels"),
        (robust, "labels[0]", "candidate labels"),
        (windows, "texts", "model passes"),
        (tokens, "texts", "tokens"),
    ):
        response = client.post("/v1/classify", json=body)
        assert response.status_code == 413, response.text
        assert response.json()["field"] == field and what in response.json()["detail"]
    assert len(gate.batches) == before  # none of it reached the model
    overlap = client.post("/v1/classify", json={**windows, "overlap": 500})
    assert overlap.status_code == 422 and overlap.json()["field"] == "overlap"
    fine = client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS})
    assert fine.status_code == 200
    assert_same(fine.json()["results"], classifier.classify(TEXTS, LABELS))


def test_a_large_request_is_prepared_beside_the_model_not_in_its_way(serve, classifier, monkeypatch) -> None:
    """While one request is being laid out (here: held in `prepare`), others are still served."""
    client, _ = serve()
    entered, release = threading.Event(), threading.Event()
    original = classifier.prepare

    def slow_prepare(texts, *args, **kwargs):
        if texts == ["a big one"]:
            entered.set()
            release.wait(30)
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(classifier, "prepare", slow_prepare)
    big = in_thread(lambda: client.post("/v1/classify", json={"texts": ["a big one"], "labels": LABELS}))
    assert entered.wait(30)
    started = time.monotonic()
    small = client.post("/v1/classify", json={"texts": TEXTS[:1], "labels": LABELS})
    assert small.status_code == 200 and time.monotonic() - started < 20
    release.set()
    assert big().status_code == 200


def test_deeply_nested_brackets_are_bad_input_and_counted(serve) -> None:
    client, _ = serve()
    body = '{"texts": ["a"], "labels": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == "body"
    deep = {"topic": "x"}
    for _ in range(200):
        deep = {"level": deep}
    response = client.post("/v1/classify", json={"texts": ["a"], "labels": deep})
    assert response.status_code == 422 and "levels" in response.json()["detail"]
    metrics = client.get("/metrics").text
    assert 'everylabel_requests_total{endpoint="classify",status="422"} 2.0' in metrics


def test_label_pairs_from_json_are_refused_not_misread(serve, classifier: Classifier) -> None:
    client, _ = serve()
    pairs = [["sports", "ball games and athletes"], ["cooking", "recipes and kitchens"]]
    response = client.post("/v1/classify", json={"texts": TEXTS[:2], "labels": pairs})
    assert response.status_code == 422 and response.json()["field"] == "labels"
    assert '{"name"' in response.json()["detail"]
    objects = [{"name": n, "description": d} for n, d in pairs]
    response = client.post("/v1/classify", json={"texts": TEXTS[:2], "labels": objects})
    assert response.status_code == 200
    assert set(response.json()["results"][0]["scores"]) == {"sports", "cooking"}
    per_text = [[{"name": "sports"}, {"name": "food"}], [{"name": "rain"}, {"name": "sun"}]]  # two each
    response = client.post("/v1/classify", json={"texts": TEXTS[:2], "labels": per_text})
    assert response.status_code == 200
    assert [set(r["scores"]) for r in response.json()["results"]] == [{"sports", "food"}, {"rain", "sun"}]


def test_the_queue_is_bounded_by_the_work_waiting(serve) -> None:
    settings = ServeSettings(max_queue_tokens=600, max_request_tokens=600)
    client, gate = serve(settings)
    gate.open.clear()
    gate.entered.clear()
    body = {"texts": ["word " * 250] * 2, "labels": LABELS}  # about 520 tokens
    first = in_thread(lambda: client.post("/v1/classify", json=body))
    assert gate.entered.wait(30)
    second = client.post("/v1/classify", json=body)
    assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1
    gate.open.set()
    assert first().status_code == 200
    wait_for(lambda: client.post("/v1/classify", json={"texts": ["x"], "labels": LABELS}).status_code == 200)


def test_settings_refuse_request_bounds_the_queue_cannot_hold() -> None:
    with pytest.raises(InputError, match="max_request_tokens"):
        ServeSettings(max_queue_tokens=100, max_request_tokens=200)
    assert json.loads(json.dumps(ServeSettings().budget.__dict__)) == {
        "max_labels": 16384,
        "max_passes": 2048,
        "max_tokens": 2**19,
        "max_refits": 4,
    }
