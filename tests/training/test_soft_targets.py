"""Single-label distillation (`soft_targets: true`): the trainer follows a record's scores over its
candidates, normalised, instead of turning them into the best candidate's index."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from everylabel import create_model
from everylabel.modeling import losses
from everylabel.prompt import InputBuilder
from everylabel.training.config import TrainConfigError, config_from_dict
from everylabel.training.data import Record
from everylabel.training.dataset import Augment, Collator, TrainingSet, soft_label_targets
from everylabel.training.trainer import Trainer


def test_scores_are_normalised_per_row_and_empty_rows_stay_empty() -> None:
    targets = torch.tensor([[0.2, 0.6, 0.2], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    expected = torch.tensor([[0.2, 0.6, 0.2], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(soft_label_targets(targets), expected)
    with pytest.raises(ValueError, match=">= 0"):
        soft_label_targets(torch.tensor([[0.5, -100.0]]))


def test_the_loss_is_cross_entropy_to_the_distribution_and_empty_rows_add_nothing() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    mask = torch.tensor([[True, True, True, False]] * 3)
    targets = torch.tensor([[0.1, 0.7, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0]])
    value = losses.single_label_loss(logits, targets, mask)
    expected = F.cross_entropy(logits[[0, 2], :3], targets[[0, 2], :3])  # probability targets
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert logits.grad is not None and logits.grad[1].abs().sum() == 0 and logits.grad[:, 3].abs().sum() == 0
    none = losses.single_label_loss(logits, torch.zeros(3, 4), mask)
    assert none.item() == 0.0 and none.requires_grad


def test_the_collator_keeps_each_score_with_its_label_through_shuffling(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"))
    builder = InputBuilder(tokenizer, model.config, 64)
    collator = Collator(builder, False, tokenizer.pad_token_id, soft_targets=True)
    scores = {"sports": 0.6, "cooking": 0.3, "law": 0.1, "music": 0.0}
    records = [Record(f"text number {i}", list(scores), dict(scores)) for i in range(12)]
    data = TrainingSet(records, Augment(shuffle_labels=True), seed=5)
    examples = [data.example(i) for i in range(len(records))]
    batch, names = collator.collate(examples)
    assert len({tuple(n) for n in names}) > 1  # the augmentation did shuffle
    for row, labels in zip(batch["labels"].tolist(), names, strict=True):
        assert row[: len(labels)] == pytest.approx([scores[name] for name in labels])
    hard = Collator(collator.builder, False, tokenizer.pad_token_id)
    assert hard(examples)["labels"].tolist() == [n.index("sports") for n in names]


def test_soft_targets_need_single_label(tmp_path: Path) -> None:
    options = {"model": "m", "train_data": "d.jsonl", "output_dir": str(tmp_path), "soft_targets": True}
    with pytest.raises(TrainConfigError, match="soft_targets"):
        config_from_dict(options).validate()
    config_from_dict({**options, "problem_type": "single_label"}).validate()


def test_training_moves_the_model_toward_the_teacher_distribution(backbone_dir, tmp_path: Path) -> None:
    labels = ["sports", "cooking", "law"]
    teacher = {"sports": 0.5, "cooking": 0.4, "law": 0.1}  # hard targets would all be "sports"
    records = [Record(f"a text about things number {i}", labels, dict(teacher)) for i in range(16)]

    def trained(soft: bool) -> list[float]:
        config = config_from_dict(
            {
                "model": str(backbone_dir("bert")),
                "train_data": "(in memory)",
                "output_dir": str(tmp_path / str(soft)),
                "problem_type": "single_label",
                "soft_targets": soft,
                "max_length": 64,
                "max_steps": 16,
                "batch_size": 8,
                "head_lr": 1e-2,
                "encoder_lr": 1e-3,
                "warmup_ratio": 0.0,
                "save_every": None,
                "shuffle_labels": False,
                "seed": 0,
                "progress": False,
            }
        )
        trainer = Trainer(config, train_records=records)
        trainer.train()
        trainer.model.eval()
        batch = trainer.to_device(trainer.collator([trainer.train_set.example(0)]))
        with torch.no_grad():
            logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, :3]
        return logits.softmax(-1).tolist()

    soft, hard = trained(True), trained(False)
    assert soft == pytest.approx([0.5, 0.4, 0.1], abs=0.1)
    assert hard[0] > 0.9  # the argmax as a class drives the others toward 0
