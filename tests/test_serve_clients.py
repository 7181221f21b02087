"""Other services' clients against a running `everylabel serve`: Hugging Face's `InferenceClient` and
the official gliclass `GLiClassClient`, answered as `Classifier.classify` answers."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from everylabel import Classifier, TruncationWarning
from everylabel.serving import ServeSettings, create_app
from everylabel.serving.compat import adapter_cache_status
from tests.live_server import live_server
from tests.test_serve import LABELS, TEXTS, classifier, model_dir, wait_for

__all__ = ["classifier", "model_dir"]  # the fixtures of test_serve.py, used here too

SETTINGS = ServeSettings(
    model="tiny", max_request_texts=4, max_queue_texts=64, max_labels=8, max_body_bytes=16384
)
LONG = "rain and wind " * 400  # longer than the tiny model's window


def official_client_class() -> Any:
    """gliclass.serve.client.GLiClassClient, loaded from its own file: the package's `serve/__init__`
    also imports Ray Serve, which the dev extra does not install (the client needs only requests)."""
    spec = importlib.util.find_spec("gliclass")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the official gliclass package (dev extra) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "serve" / "client.py"
    client_spec = importlib.util.spec_from_file_location("gliclass_serve_client", path)
    assert client_spec is not None and client_spec.loader is not None
    module = importlib.util.module_from_spec(client_spec)
    client_spec.loader.exec_module(module)
    return module.GLiClassClient


@pytest.fixture(scope="module")
def server(classifier: Classifier) -> Iterator[tuple[str, Any]]:
    """(base URL, app) of one server for the module."""
    app = create_app(lambda: classifier, SETTINGS)
    with live_server(app) as base:
        yield base, app


@pytest.fixture(scope="module")
def http(server: tuple[str, Any]) -> Iterator[httpx.Client]:
    """A plain HTTP client of the server, for bodies the protocols' clients would not send."""
    with httpx.Client(base_url=server[0]) as client:
        yield client


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Any:
    """InferenceClient with the Hub's offline switch off (set for the test session): it reaches only
    the local server, whose URL it is given as the model."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return InferenceClient


def hf_body(inputs: Any = "x", labels: Any = LABELS, **parameters: Any) -> dict[str, Any]:
    return {"inputs": inputs, "parameters": {"candidate_labels": labels, **parameters}}


@pytest.fixture(scope="module")
def gliclass(server: tuple[str, Any]) -> Any:
    return official_client_class()(f"{server[0]}/gliclass")


def best_first(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda item: -item[1])


def assert_pairs(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [label for label, _ in got] == [label for label, _ in want]
    assert [score for _, score in got] == pytest.approx([score for _, score in want], abs=1e-6)


def hf_pairs(answer: list[Any]) -> list[tuple[str, float]]:
    return [(item.label, item.score) for item in answer]


def test_hf_single_label_is_classify_softmax_by_url_alias_and_comma_labels(
    server, http, classifier, hub
) -> None:
    base, _ = server
    want = best_first(classifier.classify(TEXTS[0], LABELS, multi_label=False)[0].scores)
    for url, labels in (
        (base, LABELS),
        (f"{base}/models/knowledgator/gliclass-small-v1.0", " sports, food ,weather"),
    ):
        answer = hub(model=url).zero_shot_classification(TEXTS[0], labels)
        assert_pairs(hf_pairs(answer), want)
        assert sum(item.score for item in answer) == pytest.approx(1.0, abs=1e-6)
    assert 'everylabel_requests_total{endpoint="huggingface",status="200"} 2.0' in http.get("/metrics").text


def test_hf_multi_label_scores_each_label_alone(server, classifier, hub) -> None:
    client = hub(model=server[0])
    answer = client.zero_shot_classification(TEXTS[1], LABELS, multi_label=True)
    want = classifier.classify(TEXTS[1], LABELS, multi_label=True)[0].scores
    assert_pairs(hf_pairs(answer), best_first(want))
    softmax = classifier.classify(TEXTS[1], LABELS, multi_label=False)[0].scores
    assert sum(want.values()) != pytest.approx(sum(softmax.values()), abs=1e-3)  # not the softmax


def test_hf_hypothesis_template_becomes_the_label_text(server, classifier, hub) -> None:
    client = hub(model=server[0])
    plain = client.zero_shot_classification(TEXTS[2], LABELS, hypothesis_template="This example is {}.")
    assert_pairs(
        hf_pairs(plain), best_first(classifier.classify(TEXTS[2], LABELS, multi_label=False)[0].scores)
    )
    template = "This text is about {}."
    answer = client.zero_shot_classification(TEXTS[2], LABELS, hypothesis_template=template)
    scored = classifier.classify(TEXTS[2], [template.format(x) for x in LABELS], multi_label=False)[0].scores
    want = best_first({name: scored[template.format(name)] for name in LABELS})
    assert_pairs(hf_pairs(answer), want)  # named as the caller named them, scored as the hypotheses
    assert [s for _, s in want] != pytest.approx([s for _, s in hf_pairs(plain)], abs=1e-4)
    with pytest.raises(HfHubHTTPError, match=r"parameters\.hypothesis_template: 'About it\.' has no \{\}"):
        client.zero_shot_classification(TEXTS[2], LABELS, hypothesis_template="About it.")


def test_hf_list_of_inputs_gets_one_list_each_and_cut_texts_are_named(http, classifier) -> None:
    texts = [TEXTS[1], LONG, ""]
    response = http.post("/", json=hf_body(texts))
    assert response.status_code == 200
    with pytest.warns(TruncationWarning, match="1 of 3 texts were cut"):
        results = classifier.classify(texts, LABELS, multi_label=False)
    assert [r.truncated for r in results] == [False, True, False]
    assert response.headers["x-everylabel-truncated"] == "1"
    answer = response.json()
    assert len(answer) == 3 and answer[2] == []  # an empty text has no scores
    for got, result in zip(answer[:2], results[:2], strict=True):
        assert_pairs([(item["label"], item["score"]) for item in got], best_first(result.scores))


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"inputs": "x"}, 422, "parameters"),
        (hf_body(labels=["a", ""]), 422, "parameters.candidate_labels[1]"),
        (hf_body(labels="a,,b"), 422, "parameters.candidate_labels[1]"),
        (hf_body(labels=["a", "a"]), 422, "parameters.candidate_labels[1]"),
        (hf_body(labels={"a": 1}), 422, "parameters.candidate_labels"),
        (hf_body(inputs=["x", 3]), 422, "inputs[1]"),
        (hf_body(multi_label="yes"), 422, "parameters.multi_label"),
        (hf_body(top_k=2), 422, "parameters.top_k"),
        ({**hf_body(), "model": "m"}, 422, "model"),
        (hf_body(inputs=["x"] * 5), 413, "inputs"),
        (hf_body(labels=[f"l{i}" for i in range(9)]), 413, "parameters.candidate_labels"),
    ],
)
def test_hf_bad_input_names_the_field(http, body: dict, status: int, field: str) -> None:
    response = http.post("/models/any", json=body)
    assert response.status_code == status
    answer = response.json()
    assert answer["field"] == field and answer["detail"].startswith(f"{field}: ")
    assert answer["error"] == answer["detail"]  # the key Hugging Face's clients read


def test_hf_and_gliclass_bodies_over_the_limit_are_413(http) -> None:
    big = "word " * 4000
    hf = http.post("/", json={"inputs": big, "parameters": {"candidate_labels": LABELS}})
    gli = http.post("/gliclass", json={"texts": [big], "labels": LABELS})
    for response in (hf, gli):
        assert response.status_code == 413 and "body" in response.json()["error"]


def test_gliclass_client_equals_classify(http, gliclass, classifier) -> None:
    texts = TEXTS[:3]
    scores = [r.scores for r in classifier.classify(texts, LABELS)]
    every = sorted(s for text_scores in scores for s in text_scores.values())
    threshold = every[len(every) // 2]  # some labels over it, some under
    answer = gliclass(texts, LABELS, threshold=threshold, multi_label=True)
    want = [[(x, s[x]) for x in LABELS if s[x] >= threshold] for s in scores]  # the candidates' order
    assert 0 < sum(map(len, want)) < len(every)
    assert len(answer) == 3
    for got, expected in zip(answer, want, strict=True):
        assert_pairs([(item["label"], item["score"]) for item in got], expected)

    single = classifier.classify(texts[:2], LABELS, multi_label=False)
    answer = gliclass(texts[:2], LABELS, multi_label=False, adapter_id="__base__")
    for got, result in zip(answer, single, strict=True):
        assert_pairs([(item["label"], item["score"]) for item in got], [best_first(result.scores)[0]])

    per_text = [["sports", "food"], ["weather", "music"]]  # two labels per text: per-text lists, not pairs
    answer = gliclass(texts[:2], per_text, threshold=0.0)
    for got, result in zip(answer, classifier.classify(texts[:2], per_text), strict=True):
        assert_pairs([(item["label"], item["score"]) for item in got], list(result.scores.items()))

    shots = [{"text": "a late goal", "labels": ["sports"]}]
    one = gliclass.classify(texts[0], LABELS, threshold=0.0, prompt="Topic:", examples=shots)
    want_one = classifier.classify(texts[0], LABELS, threshold=0.0, prompt="Topic:", examples=shots)[0]
    assert_pairs([(item["label"], item["score"]) for item in one], list(want_one.scores.items()))
    assert http.post("/gliclass", json={"text": texts[0], "labels": LABELS}).json()[0] == gliclass.classify(
        texts[0], LABELS
    )  # a string is one text: [[...]]


def test_gliclass_health_and_adapter_cache(gliclass) -> None:
    assert gliclass.health_check()
    assert gliclass.adapter_cache_status() == {"enabled": False, "base_adapter_id": "__base__"}
    assert not gliclass.is_adapter_cached("legal")


def test_adapter_cache_lists_the_services_adapters() -> None:
    service = SimpleNamespace(adapters=["tax", "legal"])
    assert adapter_cache_status(service) == {
        "enabled": True, "base_adapter_id": "__base__", "loaded": ["legal", "tax"],
    }  # fmt: skip
    assert adapter_cache_status(service, "legal")["cached"]
    assert not adapter_cache_status(service, "medical")["cached"]
    assert adapter_cache_status(service, "__base__")["cached"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"texts": ["a"], "labels": ["a", ""]}, 422, "labels[1]"),
        ({"texts": ["a"], "labels": LABELS, "threshold": 2}, 422, "threshold"),
        ({"texts": ["a"], "labels": LABELS, "labls": 1}, 422, "labls"),
        ({"labels": LABELS}, 422, "texts"),
        ({"texts": ["a"]}, 422, "labels"),
        ({"text": "a", "texts": ["a"], "labels": LABELS}, 422, "text"),
        ({"texts": ["a"] * 5, "labels": LABELS}, 413, "texts"),
    ],
)
def test_gliclass_bad_input_names_the_field(http, body: dict, status: int, field: str) -> None:
    response = http.post("/gliclass", json=body)
    assert response.status_code == status
    answer = response.json()
    assert answer["field"] == field and answer["error"].startswith(f"{field}: ")


def test_gliclass_client_raises_on_bad_input(gliclass) -> None:
    import requests

    with pytest.raises(requests.HTTPError, match="422"):
        gliclass(["a"], ["a", ""])


def test_compat_routes_answer_503_while_loading(classifier) -> None:
    import threading

    release = threading.Event()

    def slow_load() -> Classifier:
        release.wait(30)
        return classifier

    with TestClient(create_app(slow_load)) as client:
        assert client.get("/gliclass/-/healthz").status_code == 503
        for path, body in (
            ("/", {"inputs": "a", "parameters": {"candidate_labels": LABELS}}),
            ("/gliclass", {"texts": ["a"], "labels": LABELS}),
        ):
            refused = client.post(path, json=body)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert refused.json()["error"] == "the model is loading"
        release.set()
        wait_for(lambda: client.get("/gliclass/-/healthz").status_code == 200)
        assert client.get("/gliclass/-/healthz").text == "success"
