"""Label-order consistency training, and continuing the training of a saved LoRA adapter."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from everylabel import load_model
from everylabel.errors import TrainConfigError
from everylabel.prompt import Request
from everylabel.training.checkpoints import check_resumable
from everylabel.training.config import RLConfig, config_from_dict, load_config
from everylabel.training.dataset import TrainingExample
from everylabel.training.order_consistency import SPREAD_FLOOR, consistency_loss, pair_slots, reordered
from everylabel.training.trainer import Trainer
from tests.training.runs import config, logged


def test_reordered_moves_targets_and_descriptions_with_their_labels() -> None:
    request = Request("a text", ["a", "b", "c", "d"], ["da", None, "dc", None])
    example = TrainingExample(request, [1.0, 0.0, 0.5, 0.0])
    other = reordered(example, random.Random(3))
    assert other.request.labels != request.labels and sorted(other.request.labels) == request.labels
    for label, target, description in zip(
        other.request.labels, other.targets, other.request.descriptions, strict=True
    ):
        index = request.labels.index(label)
        assert (target, description) == (example.targets[index], request.descriptions[index])
    assert other.request.text == "a text" and example.request.labels == ["a", "b", "c", "d"]
    assert reordered(example, random.Random(3)) == other  # seeded: the same every time it is built
    single = TrainingExample(Request("t", ["only"], [None]), [1.0])
    assert reordered(single, random.Random(0)) == single


def test_pair_slots_finds_each_label_in_the_other_order() -> None:
    pairs = pair_slots([["a", "b"], ["x", "y", "z"]], [["b", "a"], ["z", "x"]], 3)
    assert pairs.tolist() == [[1, 0, -1], [1, -1, 0]]


def test_consistency_loss_is_the_mean_squared_gap_of_paired_labels() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]], requires_grad=True)
    other = torch.tensor([[2.5, 1.0], [5.0, 0.0]])
    pairs = torch.tensor([[1, 0, -1], [0, -1, -1]])
    loss = consistency_loss(logits, other, pairs)
    # gaps: 1 - 1.0, 2 - 2.5, 3 - 5 -> (0 + 0.25 + 4) / 3
    assert loss.item() == pytest.approx(4.25 / 3)
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 2] == 0 and logits.grad[1, 0] != 0
    assert consistency_loss(logits, other, torch.full((2, 3), -1)).item() == 0.0
    assert consistency_loss(other, other, torch.tensor([[0, 1], [0, 1]])).item() == 0.0


def test_the_relative_gap_is_the_gap_over_the_spread_and_ignores_scale() -> None:
    logits = torch.tensor([[1.0, 3.0, 0.0], [3.0, 0.0, 0.0]], requires_grad=True)
    other = torch.tensor([[4.0, 1.0], [5.0, 0.0]])
    pairs = torch.tensor([[1, 0, -1], [0, -1, -1]])  # the second example has one paired label: left out
    loss = consistency_loss(logits, other, pairs, relative=True)
    # first example: A (1, 3), B's of the same labels (1, 4): gap (0 + 1) / 2, variances 1 and 2.25
    assert loss.item() == pytest.approx(0.5 / (1.625 + SPREAD_FLOOR))
    loss.backward()
    assert logits.grad is not None and logits.grad[1].abs().sum() == 0 and logits.grad[0, 2] == 0
    # the absolute gap falls ninefold when both orders' logits shrink threefold; the relative one
    # barely moves (only through the floor)
    shrunk = consistency_loss(logits / 3, other / 3, pairs, relative=True)
    assert shrunk.item() == pytest.approx(loss.item(), rel=0.05)
    absolute = consistency_loss(logits, other, pairs)
    assert consistency_loss(logits / 3, other / 3, pairs).item() == pytest.approx(absolute.item() / 9)
    assert consistency_loss(other, other, torch.tensor([[0, 1], [0, 1]]), relative=True).item() == 0.0
    assert consistency_loss(logits, other, torch.full((2, 3), -1), relative=True).item() == 0.0


def test_reordered_batch_holds_the_same_labels_and_targets(backbone_dir, toy_data, tmp_path: Path) -> None:
    trainer = Trainer(config(backbone_dir("bert"), toy_data, tmp_path / "run", order_consistency=1.0))
    batch = trainer.collate(list(range(16)), epoch=0)
    other, pairs = batch["reordered"], batch["order_pairs"]
    assert pairs.shape == batch["labels"].shape and bool((pairs >= 0).all())  # every toy label fits
    assert torch.equal(other["labels"].gather(1, pairs), batch["labels"])
    assert not torch.equal(other["input_ids"], batch["input_ids"])
    assert torch.equal(other["attention_mask"].sum(1), batch["attention_mask"].sum(1))


def order_gap(trainer: Trainer, batch: dict) -> float:
    trainer.model.eval()
    with torch.no_grad():
        plain = {k: v for k, v in batch.items() if k not in ("reordered", "order_pairs")}
        logits = trainer.forward(plain).logits
        other = trainer.forward(batch["reordered"]).logits
    return float(consistency_loss(logits, other, batch["order_pairs"]))


def test_consistency_training_lowers_the_order_gap(backbone_dir, toy_data, tmp_path: Path) -> None:
    backbone = backbone_dir("bert")
    gaps = {}
    for weight in (0.0, 10.0):
        out = tmp_path / f"run-{weight}"
        trainer = Trainer(config(backbone, toy_data, out, order_consistency=weight, max_steps=24, seed=5))
        trainer.train()
        probe = Trainer(config(backbone, toy_data, tmp_path / "probe", order_consistency=1.0, seed=5))
        gaps[weight] = order_gap(trainer, probe.collate(list(range(48)), epoch=7))
    assert gaps[10.0] < gaps[0.0] / 2, gaps


@pytest.mark.parametrize("gap", ["absolute", "relative"])
def test_consistency_training_logs_both_losses(backbone_dir, toy_data, tmp_path: Path, gap: str) -> None:
    out = tmp_path / "run"
    options = {"order_consistency": 1.0, "order_consistency_gap": gap, "max_steps": 6}
    trainer = Trainer(config(backbone_dir("bert"), toy_data, out, **options))
    trainer.train()
    assert len(logged(out, "order_gap")) == 1 and logged(out, "order_gap")[0] >= 0
    assert len(logged(out, "loss")) == 1


def test_without_dropout_the_trained_gap_is_the_order_effect(backbone_dir, toy_data, tmp_path: Path) -> None:
    gaps = {}
    for dropout in (True, False):
        options = {"order_consistency": 1.0, "order_consistency_dropout": dropout, "seed": 5, "max_steps": 12}
        trainer = Trainer(config(backbone_dir("bert"), toy_data, tmp_path / f"run-{dropout}", **options))
        trainer.train()  # logits apart from 0, so the head's dropout shows
        batch = trainer.collate(list(range(16)), epoch=3)
        in_eval = order_gap(trainer, batch)  # no dropout: only the order differs
        trainer.model.train()
        gaps[dropout] = (trainer.training_batch(batch)["order_gap"], in_eval)
        assert trainer.model.training  # back in training mode after the step
    trained, in_eval = gaps[False]
    assert trained == pytest.approx(in_eval, rel=1e-4)
    trained, in_eval = gaps[True]
    assert trained > 2 * in_eval  # two dropout masks add to the gap


def test_decoder_kv_keeps_dropout_under_order_consistency(backbone_dir, toy_data, tmp_path: Path) -> None:
    options = {"architecture_type": "decoder-kv", "scorer_mlp_hidden_size": 64, "recurrent_steps": 3}
    run = config(
        backbone_dir("qwen3"),
        toy_data,
        tmp_path,
        model_options=options,
        order_consistency=1.0,
        order_consistency_dropout=False,
    )
    with pytest.raises(TrainConfigError, match="order_consistency_dropout"):
        Trainer(run)


def test_the_ppo_stage_refuses_order_consistency(tmp_path: Path) -> None:
    raw = {"model": "m", "train_data": "d", "output_dir": str(tmp_path), "order_consistency": 1.0}
    with pytest.raises(TrainConfigError, match="order_consistency"):
        config_from_dict(raw, RLConfig)
    with pytest.raises(TrainConfigError, match="order_consistency"):
        config_from_dict({**raw, "order_consistency": -1.0})


def test_training_goes_on_in_a_saved_adapter(backbone_dir, toy_data, tmp_path: Path) -> None:
    lora = {"r": 4, "alpha": 8, "target_modules": ["query", "value"]}
    first = Trainer(config(backbone_dir("bert"), toy_data, tmp_path / "first", max_steps=4, lora=lora))
    first.train()
    saved = tmp_path / "first" / "final"
    with pytest.raises(TrainConfigError, match="r=4, alpha=8"):
        Trainer(config(saved, toy_data, tmp_path / "bad", model_options={}, lora={**lora, "r": 8}))
    second = Trainer(config(saved, toy_data, tmp_path / "second", model_options={}, max_steps=4, lora=lora))
    encoder = second.model.model.encoder_model
    assert list(encoder.peft_config) == ["default"]  # the same adapter, not a second one on top
    trainable = [name for name, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name or "trainable_tokens" in name for name in trainable)
    before = {name: p.detach().clone() for name, p in encoder.named_parameters() if p.requires_grad}
    second.train()
    assert any(not torch.equal(p, before[name]) for name, p in encoder.named_parameters() if name in before)
    reloaded, _ = load_model(tmp_path / "second" / "final")
    batch = second.collate(list(range(8)), epoch=0)
    second.model.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, second.forward(batch).logits, atol=1e-5)


RECIPE_CONSISTENCY = {
    "default-model.yaml": 0.0,
    "order-consistency.yaml": 1.0,
    "default-model-order.yaml": 20.0,
    "examples-in-context.yaml": 0.0,
    "default-model-everyday.yaml": 20.0,
}


@pytest.mark.parametrize("name", list(RECIPE_CONSISTENCY))
def test_the_recipes_are_valid_configs(name: str) -> None:
    recipe = load_config(Path(__file__).parents[2] / "recipes" / name)
    assert recipe.lora is not None and recipe.lora.r == 16
    assert recipe.order_consistency == RECIPE_CONSISTENCY[name]
    if name in ("default-model-order.yaml", "default-model-everyday.yaml"):  # the shipped model's last stages
        assert recipe.order_consistency_gap == "relative" and not recipe.order_consistency_dropout


def test_a_checkpoint_from_before_order_consistency_resumes_without_it(tmp_path: Path) -> None:
    current = {"seed": 1, "order_consistency": 0.0, "order_consistency_dropout": True}
    check_resumable({"config": {"seed": 1}}, current, "f", tmp_path)
    with pytest.raises(TrainConfigError, match="order_consistency"):
        check_resumable({"config": {"seed": 1}}, {**current, "order_consistency": 1.0}, "f", tmp_path)
