"""The config's embedding_blend: a sentence-embedding cosine added to each label's logit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from everylabel import Classifier, ConfigError, create_model, load_model
from everylabel.config import GLiClassConfig
from tests import oracle
from tests.backbones import minilm_dir

TEXTS = [
    "The striker scored twice and the team won the cup final.",
    "",
    "Bake the bread for forty minutes until the crust is golden.",
]
LABELS = ["football", "politics", "baking", "astronomy"]
TEMPLATE = "A text on {label}."
WEIGHT, OFFSET, SCALE = 3.0, 0.2, 0.5


def blend_spec(**changes: object) -> dict:
    spec = {
        "model": str(minilm_dir()),
        "template": TEMPLATE,
        "weight": WEIGHT,
        "offset": OFFSET,
        "scale": SCALE,
    }
    return spec | changes


def cosines(texts: list[str], labels: list[str]) -> np.ndarray:
    """(texts, labels) cosines of mean-pooled MiniLM embeddings, computed here from scratch."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()

    def embed(strings: list[str]) -> torch.Tensor:
        enc = tokenizer(strings, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state  # (n, seq, hidden)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    return (embed(texts) @ embed([TEMPLATE.format(label=label) for label in labels]).T).numpy()


@pytest.fixture(scope="module")
def blended(backbone_dir, tmp_path_factory) -> Classifier:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    model.config.embedding_blend = blend_spec()
    folder = tmp_path_factory.mktemp("blended")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Classifier.from_pretrained(folder, device="cpu")


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_each_logit_gains_its_centred_cosine_then_is_scaled(blended: Classifier) -> None:
    alone = Classifier(blended.model, blended.tokenizer, device="cpu", embedding_blend=False)
    assert blended.blend is not None and alone.blend is None
    with_blend = blended.classify(TEXTS, LABELS)
    without = alone.classify(TEXTS, LABELS)
    similarity = cosines([TEXTS[0], TEXTS[2]], LABELS)
    expected = WEIGHT * (similarity - similarity.mean(axis=1, keepdims=True) - OFFSET)
    for row, i in zip(expected, (0, 2), strict=True):
        for j, label in enumerate(LABELS):
            expected_logit = SCALE * (logit(without[i].scores[label]) + row[j])
            assert logit(with_blend[i].scores[label]) == pytest.approx(expected_logit, abs=1e-3)
    assert with_blend[1].empty and with_blend[1].scores == {}


def test_with_one_label_the_model_alone_decides(blended: Classifier) -> None:
    alone = Classifier(blended.model, blended.tokenizer, device="cpu", embedding_blend=False)
    for text in (TEXTS[0], TEXTS[2]):
        got = blended.classify(text, ["football"])[0].scores["football"]
        base = alone.classify(text, ["football"])[0].scores["football"]
        assert logit(got) == pytest.approx(SCALE * (logit(base) - WEIGHT * OFFSET), abs=1e-3)


BACKGROUND = ["weather", "music", "law"]


@pytest.fixture(scope="module")
def background_blended(blended: Classifier, tmp_path_factory) -> Classifier:
    model = blended.model
    model.config.embedding_blend = blend_spec(background=BACKGROUND)
    folder = tmp_path_factory.mktemp("background")
    model.save_pretrained(folder)
    blended.tokenizer.save_pretrained(folder)
    model.config.embedding_blend = blend_spec()
    return Classifier.from_pretrained(folder, device="cpu")


def test_a_background_centres_each_cosine_on_fixed_labels_whatever_its_neighbours(
    blended: Classifier, background_blended: Classifier
) -> None:
    alone = Classifier(blended.model, blended.tokenizer, device="cpu", embedding_blend=False)
    text = TEXTS[0]
    reference = cosines([text], BACKGROUND).mean()
    similarity = cosines([text], LABELS)[0]
    for label_set in (["football"], ["football", "politics"], LABELS):
        got = background_blended.classify(text, label_set)[0].scores
        base = alone.classify(text, label_set)[0].scores
        for label in label_set:
            term = WEIGHT * (similarity[LABELS.index(label)] - reference - OFFSET)
            assert logit(got[label]) == pytest.approx(SCALE * (logit(base[label]) + term), abs=1e-3)
    # the model alone reads its neighbours; the term does not: one label's term is not a constant
    one = [logit(background_blended.classify(text, [label])[0].scores[label]) for label in LABELS]
    alone_one = [logit(alone.classify(text, [label])[0].scores[label]) for label in LABELS]
    terms = [SCALE * WEIGHT * (similarity[j] - reference - OFFSET) for j in range(len(LABELS))]
    assert one == pytest.approx([SCALE * a + t for a, t in zip(alone_one, terms, strict=True)], abs=1e-3)
    assert np.ptp(terms) > 0.1


def test_the_term_reaches_every_window_and_label_group_and_per_text_labels(blended: Classifier) -> None:
    alone = Classifier(blended.model, blended.tokenizer, device="cpu", embedding_blend=False)
    long_text = " ".join(["The striker scored and the crowd sang in the rain."] * 40)
    many = [f"topic {i}" for i in range(60)] + LABELS  # several label groups in a short window
    sets = [many, LABELS[::-1]]
    options = {"truncation": "chunk", "multi_label": True}
    small = Classifier(blended.model, blended.tokenizer, device="cpu", max_length=128)
    small_alone = Classifier(
        alone.model, alone.tokenizer, device="cpu", max_length=128, embedding_blend=False
    )
    got = small.classify([long_text, TEXTS[2]], sets, **options)
    base = small_alone.classify([long_text, TEXTS[2]], sets, **options)
    assert got[0].windows > 1 and got[0].label_groups > 1
    windows_averaged = small.blend.retriever.rank([long_text], [many])[0]  # the mean over the whole set
    expected = WEIGHT * (windows_averaged - windows_averaged.mean() - OFFSET)
    for j, label in enumerate(many):  # sigmoid is monotone: the max over windows commutes with the blend
        blended_logit = SCALE * (logit(base[0].scores[label]) + expected[j])
        assert logit(got[0].scores[label]) == pytest.approx(blended_logit, abs=1e-3)
    direct_cosines = cosines([TEXTS[2]], LABELS[::-1])[0]
    direct = WEIGHT * (direct_cosines - direct_cosines.mean() - OFFSET)
    for j, label in enumerate(LABELS[::-1]):
        blended_logit = SCALE * (logit(base[1].scores[label]) + direct[j])
        assert logit(got[1].scores[label]) == pytest.approx(blended_logit, abs=1e-3)


def test_single_label_softmax_is_over_the_blended_logits(blended: Classifier) -> None:
    alone = Classifier(blended.model, blended.tokenizer, device="cpu", embedding_blend=False)
    got = blended.classify(TEXTS[2], LABELS, multi_label=False)[0]
    base = alone.classify(TEXTS[2], LABELS, multi_label=False)[0]
    term = WEIGHT * (cosines([TEXTS[2]], LABELS)[0] - OFFSET)  # the mean is the same for every label
    # log softmax(s (x + t)) - s log softmax(x) - s t is the same for every label
    rest = [
        math.log(got.scores[label]) - SCALE * (math.log(base.scores[label]) + term[j])
        for j, label in enumerate(LABELS)
    ]
    assert max(rest) - min(rest) == pytest.approx(0.0, abs=1e-3)
    assert sum(got.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_the_blend_is_saved_with_the_checkpoint(blended: Classifier, tmp_path) -> None:
    blended.model.save_pretrained(tmp_path)
    blended.tokenizer.save_pretrained(tmp_path)
    model, _ = load_model(tmp_path)
    assert model.config.embedding_blend == blend_spec()
    assert Classifier(model, blended.tokenizer, device="cpu").blend is not None


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"bias": 1.0}, "embedding_blend:"),
        ({"template": "about"}, "embedding_blend.template"),
        ({"weight": -1.0}, "embedding_blend.weight"),
        ({"offset": float("nan")}, "embedding_blend.offset"),
        ({"model": ""}, "embedding_blend.model"),
        ({"weight": True}, "embedding_blend.weight"),
        ({"scale": 0.0}, "embedding_blend.scale"),
        ({"background": []}, "embedding_blend.background"),
        ({"background": ["news", 3]}, "embedding_blend.background"),
    ],
)
def test_a_bad_blend_is_a_config_error_naming_the_key(backbone_dir, spec: dict, named: str) -> None:
    good = {"model": "m", "template": "{label}", "weight": 1.0, "offset": 0.0, "scale": 1.0}
    with pytest.raises(ConfigError, match=named):
        GLiClassConfig(encoder_model=str(backbone_dir("bert")), embedding_blend=good | spec)


def test_the_server_blends_concurrent_requests_as_classify_does(blended: Classifier) -> None:
    import threading
    import time

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from everylabel.serving import create_app

    calls = [
        (["a goal in the last minute", "soup and bread"], ["sports", "food", "music"]),
        (["a long storm " * 30], ["weather", "sports"]),
        (["the band played on", "", "rain"], [["music", "food"], ["x"], ["weather", "music", "food"]]),
    ]
    with TestClient(create_app(lambda: blended)) as client:
        while client.get("/health").status_code != 200:
            time.sleep(0.05)
        answers: dict[int, dict] = {}

        def send(k: int) -> None:
            texts, labels = calls[k]
            answers[k] = client.post("/v1/classify", json={"texts": texts, "labels": labels}).json()

        threads = [threading.Thread(target=send, args=(k,)) for k in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for k, (texts, labels) in enumerate(calls):
        for got, want in zip(answers[k]["results"], blended.classify(texts, labels), strict=True):
            assert got["scores"] == pytest.approx(want.scores, abs=1e-5)
