"""Few-shot fitting from a handful of examples per label."""

from __future__ import annotations

import pytest
import torch

from everylabel import Classifier, InputError, create_model
from everylabel.training.fewshot import few_shot_fit
from everylabel.training.trainer import Trainer
from tests.backbones import minilm_dir
from tests.toy import TOPICS, topic_shots, toy_records


def accuracy(classifier: Classifier, records: list[dict]) -> float:
    results = classifier.classify([r["text"] for r in records], sorted(TOPICS), multi_label=False)
    return sum(
        res.labels[0] == rec["true_labels"][0] for res, rec in zip(results, records, strict=True)
    ) / len(records)


def test_eight_examples_per_label_adapt_the_model() -> None:
    model, tokenizer = create_model(minilm_dir(), scorer_type="mlp", class_token_pooling="average")
    classifier = Classifier(model, tokenizer, device="cpu")
    shots = topic_shots(8)
    test = [r for r in toy_records(120, seed=9) if len(r["true_labels"]) == 1]
    before = accuracy(classifier, test)
    result = few_shot_fit(classifier, shots, epochs=6, encoder_lr=5e-5, head_lr=1e-3)
    after = accuracy(classifier, test)
    assert len(shots) == 32 and result.steps == 24
    assert after > before + 0.3 and after > 0.8
    assert not classifier.model.training


def test_bad_examples_are_refused() -> None:
    model, tokenizer = create_model(minilm_dir())
    classifier = Classifier(model, tokenizer, device="cpu")
    with pytest.raises(InputError, match=r"examples\[1\]\.labels: 'golf' is not one of the labels"):
        few_shot_fit(
            classifier, [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["golf"]}], labels=["x"]
        )
    with pytest.raises(InputError, match=r"examples\[0\]\.text"):
        few_shot_fit(classifier, [{"text": "", "labels": ["x"]}])


def _shots() -> list[dict]:
    return [{"text": r["text"], "labels": r["true_labels"][:1]} for r in toy_records(16, seed=2)]


def _head(classifier: Classifier) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone()
        for k, v in classifier.model.state_dict().items()
        if not k.startswith("model.encoder_model.")
    }


def test_a_bf16_model_trains_on_fp32_master_weights(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp", dropout=0.0)
    classifier = Classifier(model, tokenizer, device="cpu", dtype="bf16")
    before = _head(classifier)
    # Steps of about 1e-4 on weights of about 0.03 are below bf16's rounding step there: trained
    # in bf16 itself they round away; accumulated on fp32 weights they add up.
    few_shot_fit(classifier, _shots(), epochs=4, encoder_lr=1e-5, head_lr=1e-4, batch_size=4)
    after = _head(classifier)
    assert all(v.dtype == torch.bfloat16 for v in after.values())
    assert not classifier.model.training
    # Among weights of magnitude 0.03 and more (bf16 steps there are >= 1.2e-4):
    large = {k: v.float().abs() >= 0.03 for k, v in before.items()}
    changed = sum(int(((after[k] != before[k]) & large[k]).sum()) for k in before)
    total = sum(int(m.sum()) for m in large.values())
    assert total > 1000 and changed > 0.5 * total
    classifier.classify(["still classifies"], ["a", "b"])  # dtype and mode fit the classifier again


def test_a_failed_fit_rolls_back_and_leaves_the_global_seed(backbone_dir, monkeypatch) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp", dropout=0.1)
    classifier = Classifier(model, tokenizer, device="cpu", dtype="bf16")
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    few_shot_fit(classifier, _shots(), epochs=1, batch_size=4, seed=9)
    assert torch.equal(torch.rand(4), expected)  # the caller's random stream is untouched

    before = {k: v.clone() for k, v in classifier.model.state_dict().items()}
    config_before = (model.config.problem_type, model.config.mask_padding)
    calls = []
    real_step = Trainer.optimizer_step

    def failing_step(self) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory, say")
        real_step(self)

    monkeypatch.setattr(Trainer, "optimizer_step", failing_step)
    with pytest.raises(RuntimeError, match="out of memory"):
        few_shot_fit(classifier, _shots(), epochs=2, batch_size=4, multi_label=True)
    assert len(calls) == 2  # one real update was made before the failure
    after = classifier.model.state_dict()
    assert all(after[k].dtype == torch.bfloat16 or not after[k].is_floating_point() for k in after)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert (model.config.problem_type, model.config.mask_padding) == config_before
    assert not classifier.model.training
