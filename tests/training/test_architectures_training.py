"""Training the encoder-decoder architectures (tiny T5) and decoder-kv (tiny Qwen3, with recurrent
reasoning): the trainer, LoRA and few-shot fitting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from everylabel import Classifier, create_model
from everylabel.adapters import is_adapter_folder
from everylabel.training.fewshot import few_shot_fit
from everylabel.training.trainer import Trainer
from tests.toy import TOPICS, topic_shots
from tests.training.runs import TOY_MODEL, config, logged

# (architecture, backbone family, extra config keys)
# Each trains a small model three ways (about 10 s in all): with `-m slow`, to keep `make test` in budget.
pytestmark = pytest.mark.slow

ARCHITECTURES = [
    ("encoder-decoder", "t5", {}),
    ("encoder-decoder-cls", "t5", {}),
    ("decoder-kv", "qwen3", {"scorer_mlp_hidden_size": 64, "recurrent_steps": 3}),
]
IDS = [arch for arch, _, _ in ARCHITECTURES]


@pytest.mark.parametrize(("arch", "family", "extra"), ARCHITECTURES, ids=IDS)
def test_the_trainer_trains_each_architecture_with_and_without_lora(
    backbone_dir, toy_data, tmp_path: Path, arch: str, family: str, extra: dict
) -> None:
    options = {**TOY_MODEL, "architecture_type": arch, **extra}
    full = config(
        backbone_dir(family), toy_data, tmp_path / "full", model_options=options, max_steps=12, log_every=3
    )
    Trainer(full).train()
    losses = logged(tmp_path / "full", "loss")
    assert len(losses) == 4 and losses[-1] < losses[0]
    clf = Classifier.from_pretrained(tmp_path / "full" / "final", device="cpu")
    assert clf.model.config.architecture_type == arch
    (row,) = clf.classify(["The striker scored twice."], sorted(TOPICS))
    assert set(row.scores) == set(TOPICS)

    lora = config(
        backbone_dir(family), toy_data, tmp_path / "lora", model_options=options, max_steps=6, log_every=3,
        lora={"r": 4, "alpha": 8},
    )  # fmt: skip
    Trainer(lora).train()
    final = tmp_path / "lora" / "final"
    assert is_adapter_folder(final)  # only what training changed, rebuilt on the base backbone
    adapted = Classifier.from_pretrained(final, device="cpu")
    assert adapted.model.config.architecture_type == arch
    assert set(adapted.classify(["a match"], ["sports", "politics"])[0].scores) == {"sports", "politics"}


@pytest.mark.parametrize(("arch", "family", "extra"), ARCHITECTURES, ids=IDS)
def test_few_shot_fit_moves_each_architecture(backbone_dir, arch: str, family: str, extra: dict) -> None:
    model, tokenizer = create_model(backbone_dir(family), architecture_type=arch, scorer_type="mlp", **extra)
    classifier = Classifier(model, tokenizer, device="cpu")
    texts, labels = ["The striker scored twice.", "Bake the cake."], sorted(TOPICS)
    before = torch.tensor([list(r.scores.values()) for r in classifier.classify(texts, labels)])
    result = few_shot_fit(classifier, topic_shots(2), epochs=2, encoder_lr=1e-3, head_lr=1e-3)
    after = torch.tensor([list(r.scores.values()) for r in classifier.classify(texts, labels)])
    # A new head starts near 0.5 everywhere; two small steps move every score a little.
    assert result.steps == 2 and (after - before).abs().min() > 1e-5
