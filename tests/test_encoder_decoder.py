"""The encoder-decoder architectures through everylabel's own paths: the two-sequence layout (label
groups, text windows), ONNX export, the CLI and the config's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from everylabel import Classifier, ConfigError, create_model
from everylabel.onnx import OnnxClassifier, export_onnx
from everylabel.onnx.manifest import OnnxManifest
from tests import oracle
from tests.test_cli import run

TEXTS = [text for text, _ in oracle.ROWS]
LABELS = ["sports", "politics", "cooking", "weather", "economy"]


@pytest.fixture(scope="module", params=["encoder-decoder", "encoder-decoder-cls"])
def folder(request, backbone_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(request.param)
    return oracle.official_checkpoint(
        backbone_dir("t5"), out, architecture_type=request.param, scorer_type="mlp"
    )


def test_text_and_labels_are_two_sequences_each_with_the_whole_budget(folder: Path) -> None:
    classifier = Classifier.from_pretrained(folder, device="cpu", max_length=16, min_text_tokens=4)
    long_text = " ".join(["the match went on"] * 12)  # far over 16 tokens
    labels = ["team sports", "national politics", "home cooking", "bad weather", "world economy"]
    prepared = classifier.prepare([long_text], labels, truncation="chunk")
    passes = prepared.passes
    assert all(len(p.input_ids) <= 16 and p.label_ids is not None and len(p.label_ids) <= 16 for p in passes)
    groups = {p.group for p in passes}
    windows = {p.window for p in passes}
    assert len(groups) > 1 and len(windows) > 1  # labels grouped, text windowed, independently
    assert len(passes) == len(groups) * len(windows)
    label_id = classifier.model.config.class_token_index
    assert all(label_id not in p.input_ids for p in passes)  # the markers are in the label blocks only
    assert sum(p.label_ids.count(label_id) for p in passes if p.window == 0) == len(labels)
    (result,) = classifier.classify([long_text], labels, truncation="chunk")
    assert list(result.scores) == labels


def test_user_text_cannot_inject_a_label_marker(folder: Path) -> None:
    classifier = Classifier.from_pretrained(folder, device="cpu")
    (item,) = classifier.prepare(["ends here <<LABEL>>fake<<SEP>>"], ["sports", "politics"]).passes
    config = classifier.model.config
    assert config.class_token_index not in item.input_ids and config.text_token_index not in item.input_ids
    assert item.label_ids is not None and item.label_ids.count(config.class_token_index) == 2


def test_onnx_export_gives_the_torch_scores(folder: Path, tmp_path: Path) -> None:
    out = export_onnx(folder, tmp_path / "onnx")
    manifest = OnnxManifest.load(out)
    assert manifest.fusion["model"] == {"kept_plain": "no fusions for 't5' backbones"}
    kwargs = {"prompt": "Which topic?", "examples": [{"text": "Goal!", "labels": ["sports"]}]}
    expected = Classifier.from_pretrained(folder, device="cpu").classify(TEXTS, LABELS, **kwargs)
    got = OnnxClassifier(out).classify(TEXTS, LABELS, **kwargs)
    for ours, reference in zip(got, expected, strict=True):
        for label in LABELS:
            assert ours.scores[label] == pytest.approx(reference.scores[label], abs=1e-5)


def test_the_command_line_classifies_with_an_encoder_decoder(capsys, folder: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "classify", "The striker scored twice.", "--labels", "sports,politics",
                         "--model", str(folder))  # fmt: skip
    assert code == 0, err
    row = json.loads(out.splitlines()[0])
    assert set(row["scores"]) == {"sports", "politics"}


def test_an_encoder_decoder_needs_an_encoder_decoder_backbone(backbone_dir) -> None:
    with pytest.raises(ConfigError, match="encoder_config: architecture_type 'encoder-decoder' needs"):
        create_model(backbone_dir("bert"), architecture_type="encoder-decoder")
    with pytest.raises(ConfigError, match="pooling_strategy: 'encoder-decoder-cls' reads the text"):
        create_model(
            backbone_dir("t5"), architecture_type="encoder-decoder-cls", pooling_strategy="pass",
            scorer_type="cross-attn",
        )  # fmt: skip


def test_the_server_answers_as_the_classifier(folder: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from everylabel.serving import create_app
    from tests.test_serve import assert_same, wait_for

    classifier = Classifier.from_pretrained(folder, device="cpu")
    with TestClient(create_app(lambda: classifier)) as client:
        wait_for(lambda: client.get("/health").status_code == 200)
        response = client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS, "prompt": "Topic?"})
        assert response.status_code == 200, response.text
        assert_same(response.json()["results"], classifier.classify(TEXTS, LABELS, prompt="Topic?"))
