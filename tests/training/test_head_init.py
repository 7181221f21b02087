"""`head_init: identity`: a new model's projectors start as the identity map."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from everylabel.modeling.layers import FeaturesProjector
from everylabel.training.config import TrainConfigError, config_from_dict
from everylabel.training.trainer import Trainer
from tests.backbones import HIDDEN
from tests.toy import write_toy


@pytest.mark.parametrize("activation", ["gelu", "relu", "silu", "gelu_new"])
def test_identity_projector_returns_its_input(activation: str) -> None:
    projector = FeaturesProjector(24, 48, activation, dropout=0.3).eval()
    projector.init_identity()
    x = torch.randn(5, 24) * 3  # (rows, width), values well into both signs
    assert torch.allclose(projector(x), x, atol=1e-5)


def test_identity_projector_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match=r"hidden_size: an identity projector needs 2 x 24 = 48, not 32"):
        FeaturesProjector(24, 32, "gelu", 0.0).init_identity()
    with pytest.raises(ValueError, match=r"projector_hidden_act"):
        FeaturesProjector(24, 48, "tanh", 0.0).init_identity()


def make_config(backbone: Path, tmp_path: Path, **overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = write_toy(tmp_path / "train.jsonl", 16, seed=0)
    options = {
        "model": str(backbone),
        "train_data": str(data),
        "output_dir": str(tmp_path / "out"),
        "max_steps": 1,
        "batch_size": 8,
        **overrides,
    }
    return config_from_dict(options)


def test_new_model_starts_with_identity_projectors(backbone_dir, tmp_path: Path) -> None:
    backbone = backbone_dir("bert")
    width = HIDDEN
    model_options = {"hidden_size": 2 * width, "pooling_strategy": "avg", "scorer_type": "simple"}
    trainer = Trainer(make_config(backbone, tmp_path, model_options=model_options, head_init="identity"))
    head = trainer.model.model
    x = torch.randn(3, width)
    for projector in (head.text_projector, head.classes_projector):
        assert torch.allclose(projector.eval()(x), x, atol=1e-5)
    plain = Trainer(make_config(backbone, tmp_path / "r", model_options=model_options))
    assert not torch.allclose(plain.model.model.text_projector.eval()(x), x, atol=1e-2)


def test_head_init_errors_name_the_key(backbone_dir, tmp_path: Path) -> None:
    backbone = backbone_dir("bert")
    with pytest.raises(TrainConfigError, match=r"^head_init: identity: hidden_size: an identity projector"):
        Trainer(make_config(backbone, tmp_path, head_init="identity"))  # hidden_size = width, not 2x
    with pytest.raises(TrainConfigError, match=r"^head_init: 'zeros' is not one of"):
        make_config(backbone, tmp_path, head_init="zeros")
    trained = Trainer(make_config(backbone, tmp_path / "first"))
    trained.train()
    checkpoint = tmp_path / "first" / "out" / "final"
    with pytest.raises(TrainConfigError, match=r"^head_init: only for a new model"):
        Trainer(make_config(checkpoint, tmp_path / "second", head_init="identity"))
