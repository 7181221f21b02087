"""The server answers exactly what `classify` answers, for every architecture and runtime it serves,
while other requests with other labels and options are batched beside it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

from fastapi.testclient import TestClient

from everylabel import Classifier, create_model
from everylabel.inference.calibration import Calibration
from everylabel.onnx import export_onnx
from everylabel.serving import ServeSettings, create_app
from tests import oracle
from tests.test_onnx import save_checkpoint
from tests.test_serve import assert_same, wait_for

TEXTS = ["the match ended with a late goal", "bread and soup for dinner", "", "rain and wind all day"]
LONG = "a long report on the weather, the harvest and the markets " * 30
# Requests that run together: different label sets (a label in two of them with different
# neighbours), options, prompts, label descriptions as JSON objects, long texts in windows.
CALLS: list[dict[str, Any]] = [
    {"texts": TEXTS, "labels": ["sports", "food", "weather"]},
    {"texts": TEXTS[:2], "labels": ["food", "a very long label about cooking and kitchens"]},
    {"texts": TEXTS, "labels": ["sports", "politics"], "multi_label": False, "prompt": "Topic:"},
    {"texts": TEXTS[1:], "labels": [{"name": "food", "description": "meals and cooking"}, "sports"]},
    {"texts": [TEXTS[0], LONG], "labels": ["weather", "money"], "truncation": "chunk", "overlap": 8},
    {"texts": TEXTS, "labels": ["weather", "sports", "food"], "label_order": "robust"},
    {"texts": TEXTS[:2], "labels": [["sports", "news"], ["food", "news", "travel"]], "threshold": 0.3},
    {
        "texts": TEXTS,
        "labels": {"topic": ["sports", "food"], "tone": ["calm", "angry"]},
        "multi_label": False,
    },
]
SHORTLIST: dict[str, Any] = {"texts": TEXTS, "labels": [f"label {i}" for i in range(12)], "shortlist": 3}


class Gate:
    """Holds the model worker's first call until every request is queued, so they are batched
    together (a bi-encoder ranking its own shortlist runs while preparing, outside the worker)."""

    def __init__(self, classifier: Classifier) -> None:
        self.run = classifier.backend.run
        self.open = threading.Event()

    def __call__(self, *args: Any) -> Any:
        if threading.current_thread().name == "everylabel-model-worker":
            self.open.wait(30)
        return self.run(*args)


def build(backbone: Path, architecture: str, **options: Any) -> tuple[Any, Any]:
    extra = {"pooling_strategy": "avg"} if architecture != "uni-encoder" else {}
    model, tokenizer = create_model(
        backbone, architecture_type=architecture, dropout=0.0, normalize_features=True, **extra, **options
    )
    oracle.spread_weights(model, std=0.05)
    return model, tokenizer


@pytest.fixture(scope="module")
def checkpoints(backbone_dir, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for architecture in ("uni-encoder", "bi-encoder", "bi-encoder-fused"):
        model, tokenizer = build(backbone_dir("bert"), architecture)
        out[architecture] = save_checkpoint(model, tokenizer, tmp_path_factory.mktemp(architecture))
    return out


@pytest.fixture(scope="module")
def exports(checkpoints, tmp_path_factory) -> dict[str, Path]:
    return {
        name: export_onnx(folder, tmp_path_factory.mktemp(f"{name}-onnx") / "x")
        for name, folder in checkpoints.items()
    }


def calibrated(clf: Classifier) -> Classifier:
    """A per-label Platt calibration with tuned thresholds, fitted for multi-label calls."""
    clf.calibration = Calibration(
        "platt", "multi-label", 1.3, -0.2, {"sports": (0.8, 0.4)}, {"food": 0.35}, default_threshold=0.45
    )
    return clf


def serve_and_compare(
    clf: Classifier, calls: list[dict[str, Any]], settings: ServeSettings | None = None, **extra: Any
) -> None:
    """Each call alone through `classify` (with `extra` where it shortlists, as the server adds its
    retriever), then all at once through the server."""
    expected = [clf.classify(**call, **(extra if "shortlist" in call else {})) for call in calls]
    gate = Gate(clf)
    clf.backend.run = gate  # type: ignore[method-assign]
    try:
        with TestClient(create_app(lambda: clf, settings)) as client:
            gate.open.set()
            wait_for(lambda: client.get("/health").status_code == 200)
            gate.open.clear()
            answers: list[Any] = [None] * len(calls)

            def post(k: int) -> None:
                answers[k] = client.post("/v1/classify", json=calls[k])

            threads = [threading.Thread(target=post, args=(k,)) for k in range(len(calls))]
            for thread in threads:
                thread.start()
            wait_for(
                lambda: client.app.state.service.scheduler.queued_texts >= sum(len(c["texts"]) for c in calls)
            )
            gate.open.set()
            for thread in threads:
                thread.join(60)
    finally:
        del clf.backend.run
    for call, answer, want in zip(calls, answers, expected, strict=True):
        assert answer.status_code == 200, (call, answer.text)
        assert_same(answer.json()["results"], want)


@pytest.mark.parametrize("architecture", ["uni-encoder", "bi-encoder", "bi-encoder-fused"])
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_the_server_answers_what_classify_answers(
    checkpoints, exports, architecture: str, runtime: str
) -> None:
    source = exports[architecture] if runtime == "onnx" else checkpoints[architecture]
    clf = Classifier.from_pretrained(source, device="cpu", backend=runtime)
    calls = CALLS + ([SHORTLIST, taught(clf)] if architecture == "bi-encoder" else [])
    serve_and_compare(clf, calls)
    serve_and_compare(calibrated(clf), calls[:4])


def taught(clf: Classifier) -> dict[str, Any]:
    """A call whose examples refit a bi-encoder's label vectors (each text shown twice as the label
    it likes least, so the refit passes its left-out check); its examples are encoded while
    preparing, beside the other requests' batches."""
    call: dict[str, Any] = {"texts": TEXTS, "labels": ["sports", "food", "weather"], "multi_label": False}
    shown = []
    for text, result in zip(TEXTS, clf.classify(**call), strict=True):
        if result.scores:
            shown.append({"text": text, "labels": [min(result.scores, key=result.scores.__getitem__)]})
    assert any(fit is not None for fit in clf.prepare(**call, examples=shown * 2).label_fits or [])
    return {**call, "examples": shown * 2}


def test_official_padding_keeps_each_requests_own_label_vectors(checkpoints) -> None:
    """A bi-encoder pooled with padding (`mask_padding=False`, avg): a label's vector depends on the
    call's other labels, so two requests batched together must each get their own."""
    clf = Classifier.from_pretrained(
        checkpoints["bi-encoder"], device="cpu", backend="torch", mask_padding=False
    )
    assert clf.label_vectors is not None and not clf.label_vectors.cacheable
    calls = [
        {"texts": TEXTS[:2], "labels": ["sports", "a much longer label about football matches"]},
        {"texts": TEXTS[:2], "labels": ["sports", "food"]},
        {"texts": TEXTS[:2], "labels": [["sports"], ["sports", "weather and rain all day long"]]},
    ]
    alone = [clf.classify(**call)[0].scores["sports"] for call in calls]
    assert len({round(score, 6) for score in alone}) == 3  # the same label, three vectors
    serve_and_compare(clf, calls)


def test_shortlists_on_a_uni_encoder_use_the_servers_retriever(checkpoints, backbone_dir) -> None:
    clf = Classifier.from_pretrained(checkpoints["uni-encoder"], device="cpu", backend="torch")
    retriever = str(backbone_dir("bert"))
    (first, *_) = clf.classify(**SHORTLIST, retriever=retriever)
    assert first.shortlist is not None and first.shortlist.retriever == f"embedding:{retriever}"
    serve_and_compare(clf, [SHORTLIST, CALLS[0]], ServeSettings(retriever=retriever), retriever=retriever)
