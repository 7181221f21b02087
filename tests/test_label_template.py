"""`label_template`: the sentence a model reads each label in, applied by torch, ONNX and training alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from everylabel import Classifier, ConfigError, Label, create_model
from everylabel.inference.label_vectors import LabelVectors
from everylabel.onnx import OnnxClassifier, export_onnx
from everylabel.prompt import InputBuilder, Request
from everylabel.tokenization import load_label_tokenizer, save_label_tokenizer
from everylabel.training.dataset import Collator, TrainingExample
from tests import oracle

TEMPLATE = "This article is about {label}."
TEXTS = ["The match ended in a draw after extra time.", "Stir the sauce gently and add salt."]
LABELS = ["sports", "cooking", "weather"]


def in_sentence(labels: list[str]) -> list[str]:
    return [TEMPLATE.replace("{label}", label) for label in labels]


def model_pair(backbone: Path, **options):
    """The same weights twice: with the template in its config and without."""
    model, tokenizer = create_model(backbone, dropout=0.0, **options)
    oracle.spread_weights(model)
    templated, _ = create_model(backbone, dropout=0.0, label_template=TEMPLATE, **options)
    templated.load_state_dict(model.state_dict())
    return model.eval(), templated.eval(), tokenizer


BI = {"architecture_type": "bi-encoder", "pooling_strategy": "avg", "normalize_features": True}


@pytest.mark.parametrize("options", [BI, {}], ids=["bi-encoder", "uni-encoder"])
def test_a_templated_model_reads_labels_in_its_sentence(backbone_dir, options) -> None:
    plain, templated, tokenizer = model_pair(backbone_dir("bert"), **options)
    plain_clf = Classifier(plain, tokenizer, device="cpu", descriptions="label")
    templated_clf = Classifier(templated, tokenizer, device="cpu", descriptions="label")
    by_sentence = plain_clf.classify(TEXTS, in_sentence(LABELS))
    by_name = templated_clf.classify(TEXTS, LABELS)
    bare = plain_clf.classify(TEXTS, LABELS)
    for sentence, name, alone in zip(by_sentence, by_name, bare, strict=True):
        assert list(name.scores) == LABELS  # results keep the caller's names
        np.testing.assert_allclose(list(name.scores.values()), list(sentence.scores.values()), atol=1e-6)
        assert (
            max(abs(a - b) for a, b in zip(name.scores.values(), alone.scores.values(), strict=True)) > 1e-3
        )
    # Descriptions go inside the sentence: "sports: games and matches".
    described = templated_clf.classify(TEXTS[0], [Label("sports", "games and matches"), Label("cooking")])[0]
    expected = plain_clf.classify(TEXTS[0], in_sentence(["sports: games and matches", "cooking"]))[0]
    np.testing.assert_allclose(list(described.scores.values()), list(expected.scores.values()), atol=1e-6)


def test_bi_encoder_label_vectors_and_onnx_export_use_the_template(backbone_dir, tmp_path) -> None:
    plain, templated, tokenizer = model_pair(backbone_dir("bert"), **BI)
    clf = Classifier(templated, tokenizer, device="cpu")
    vectors = clf.label_vectors
    assert vectors is not None
    np.testing.assert_allclose(
        clf.encode_labels(LABELS),
        Classifier(plain, tokenizer, device="cpu").encode_labels(in_sentence(LABELS)),
        atol=1e-6,
    )
    folder = tmp_path / "model"
    templated.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_label_tokenizer(load_label_tokenizer(templated.config), folder)
    export = export_onnx(folder, tmp_path / "onnx")
    onnx = OnnxClassifier(export)
    assert onnx.backend.manifest.label_template == TEMPLATE
    # The label encoder's backbone is the text encoder's: one tokenizer file serves both, and a
    # label's text still cannot reach the model's special tokens through it.
    assert onnx.backend.manifest.label.file == "tokenizer.json"
    assert not (export / "label_tokenizer.json").exists()
    encoder = onnx.backend.label_encoder
    plain = encoder.tokens.ids(["<<LABEL>> sports"])[0]
    assert max(plain) < templated.config.label_model_config.vocab_size
    assert plain == vectors.tokens.ids(["<<LABEL>> sports"])[0]
    for a, b in zip(onnx.classify(TEXTS, LABELS), clf.classify(TEXTS, LABELS), strict=True):
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-4)


def test_training_batches_give_the_label_encoder_the_sentence(backbone_dir) -> None:
    _, templated, tokenizer = model_pair(backbone_dir("bert"), **BI)
    label_tokenizer = load_label_tokenizer(templated.config)
    vectors = LabelVectors(templated, label_tokenizer, mask_padding=True)
    collator = Collator(InputBuilder(tokenizer, templated.config, 64), False, 0, label_tokens=vectors.tokens)
    request = Request(TEXTS[0], ["sports", "cooking"], [None, "food and recipes"])
    batch, names = collator.collate([TrainingExample(request, [1.0, 0.0])])
    assert names == [["sports", "cooking"]]
    expected = vectors.tokens.batch([in_sentence(["sports", "cooking: food and recipes"])])
    for key, value in expected.items():
        assert np.array_equal(batch[key].numpy(), value.numpy()), key


@pytest.mark.parametrize("template", ["about labels", "{label} or {label}", 3])
def test_a_template_without_one_label_place_is_refused(backbone_dir, template) -> None:
    with pytest.raises(ConfigError, match="label_template"):
        create_model(backbone_dir("bert"), label_template=template)
