"""The scheduler decides only which passes run together: a step costs the same however long the queue
is, and a failing post-processing step fails its own request once, not every step."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

pytest.importorskip("fastapi")

from everylabel import Classifier
from everylabel.inference.embedding_blend import EmbeddingBlend
from everylabel.serving import ServeSettings
from tests.test_serve import LABELS, classifier, in_thread, model_dir, serve, wait_for

__all__ = ["classifier", "model_dir", "serve"]  # the fixtures of test_serve.py, used here too


def test_a_step_reads_only_the_oldest_passes(serve, classifier: Classifier, monkeypatch) -> None:
    """With hundreds of requests queued, no step looks at more than the passes of its pool (before, each
    step rebuilt the pending list and recomputed the batch limit over every waiting pass)."""
    sizes: list[int] = []
    original = classifier.batch_limit

    def counting(passes, batch_size=None):
        sizes.append(len(passes))
        return original(passes, batch_size)

    monkeypatch.setattr(classifier, "batch_limit", counting)
    client, gate = serve(ServeSettings(max_queue_texts=1024, max_request_texts=4))
    gate.open.clear()
    gate.entered.clear()
    requests = [
        in_thread(
            lambda i=i: client.post("/v1/classify", json={"texts": [f"text {i}"] * 2, "labels": LABELS})
        )
        for i in range(200)
    ]
    wait_for(lambda: client.app.state.service.scheduler.queued_texts == 400)
    gate.open.set()
    assert all(join().status_code == 200 for join in requests)
    assert len(sizes) >= 200 and max(sizes) <= 2  # one request's own passes, never the queue's


class FailingRetriever:
    """An embedding retriever whose pass fails for one text; counts its calls."""

    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    def rank(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        self.calls += 1
        if "poison" in texts:
            raise RuntimeError("the embedding pass failed")
        return [np.linspace(0.1, 0.9, len(labels)) for labels in label_sets]


def test_a_failing_blend_fails_its_request_once(serve, classifier: Classifier, monkeypatch) -> None:
    retriever = FailingRetriever()
    monkeypatch.setattr(classifier, "blend", EmbeddingBlend(retriever, weight=1.0, offset=0.0, scale=1.0))
    monkeypatch.setattr(classifier, "batch_size", 1)  # many steps while the poisoned request waits
    client, gate = serve()
    gate.open.clear()
    gate.entered.clear()
    texts = ["fine one", "poison", *[f"more text {i}" for i in range(20)]]
    jobs = [
        in_thread(lambda t=t: client.post("/v1/classify", json={"texts": [t], "labels": LABELS}))
        for t in texts
    ]
    wait_for(lambda: client.app.state.service.scheduler.queued_texts == len(texts))
    retriever.calls = 0
    gate.open.set()
    answers = [join() for join in jobs]
    codes = [a.status_code for a in answers]
    assert codes[1] == 500 and "the embedding pass failed" in answers[1].json()["detail"]
    assert codes[:1] + codes[2:] == [200] * (len(texts) - 1)
    assert retriever.calls <= 2 * len(texts)  # each finish once, and the group retried job by job once


def test_a_batch_never_mixes_adapters(serve, adapter_classifier, lora_expected, monkeypatch) -> None:
    """Requests for two adapters and the model's own weights, queued interleaved, run in one batch per
    adapter (the oldest request's first), and each answers as its adapter's own folder would."""
    from tests.adapter_models import LABELS, TEXTS
    from tests.test_serve import assert_same

    hold, entered = threading.Event(), threading.Event()
    hold.set()
    batches: list[set] = []  # the adapters of each model call
    original = adapter_classifier.run_batch

    def recording(rows):
        entered.set()
        hold.wait(30)
        batches.append({prepared.adapter for prepared, _ in rows})
        return original(rows)

    monkeypatch.setattr(adapter_classifier, "run_batch", recording)
    client, _ = serve(load=lambda: adapter_classifier)
    hold.clear()
    entered.clear()
    blocker = in_thread(lambda: client.post("/v1/classify", json={"texts": ["hold"], "labels": LABELS}))
    assert entered.wait(30)
    order = ["a", "b", None, "b", "a", None]
    body = {"texts": TEXTS[:2], "labels": LABELS}
    joins = [in_thread(lambda a=a: client.post("/v1/classify", json={**body, "adapter": a})) for a in order]
    wait_for(lambda: client.app.state.service.scheduler.queued_texts == 1 + 2 * len(order))
    before = len(batches)
    hold.set()
    assert blocker().status_code == 200
    answers = [join() for join in joins]
    assert all(len(adapters) == 1 for adapters in batches)
    after = batches[before + 1 :]  # past the blocker's batch: one batch for each adapter's two requests
    assert len(after) == 3 and {next(iter(adapters)) for adapters in after} == {"a", "b", None}
    for answer, adapter in zip(answers, order, strict=True):
        assert answer.status_code == 200
        assert_same(answer.json()["results"], lora_expected[adapter or "a"][:2])
