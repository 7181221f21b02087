"""The level term of single-label training (`level_loss`): a binary cross-entropy through a fixed
Platt step, so a text's logits cannot drift together where only the softmax trains them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from everylabel import create_model
from everylabel.modeling import losses
from everylabel.prompt import InputBuilder
from everylabel.training.config import TrainConfigError, config_from_dict, load_config
from everylabel.training.data import DataError, Record, load_records
from everylabel.training.dataset import Augment, Collator, TrainingSet
from everylabel.training.trainer import Trainer


def test_the_level_loss_is_bce_through_the_platt_step_on_real_slots() -> None:
    logits = torch.randn(2, 3, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    scores = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.2, 0.0]])
    value = losses.platt_level_loss(logits, scores, mask, scale=2.0, bias=-1.0)
    real = mask.nonzero(as_tuple=True)
    expected = F.binary_cross_entropy_with_logits(2.0 * logits[real] - 1.0, scores[real])
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert logits.grad is not None and logits.grad[0, 2] == 0 and logits.grad[1, 2] != 0


def test_the_collator_adds_the_scores_only_when_asked(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"))
    builder = InputBuilder(tokenizer, model.config, 64)
    records = [
        Record("the match went to extra time", ["sports", "law"], {"sports": 1.0}),
        Record("a one-label call about something else", ["law"], {}),
    ]
    data = TrainingSet(records, Augment(shuffle_labels=False), seed=0)
    examples = [data.example(i) for i in range(len(records))]
    batch = Collator(builder, False, tokenizer.pad_token_id, level_targets=True)(examples)
    assert batch["level_targets"].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert batch["labels"].tolist() == [0, -100]  # the softmax trains the first row only
    pad = tokenizer.pad_token_id
    assert "level_targets" not in Collator(builder, False, pad)(examples)
    assert "level_targets" not in Collator(builder, True, pad, level_targets=True)(examples)  # BCE already
    assert batch["level_rows"].tolist() == [True, True]


def test_level_sources_pick_the_rows_the_level_loss_reads(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"))
    builder = InputBuilder(tokenizer, model.config, 64)
    records = [
        Record("a teacher's soft scores", ["sports", "law"], {"sports": 0.7, "law": 0.3}, source="teacher"),
        Record("the team won the cup", ["sports", "food"], {"sports": 1.0}, source="everyday"),
        Record("a record without a source", ["law"], {}),
    ]
    data = TrainingSet(records, Augment(shuffle_labels=False), seed=0)
    examples = [data.example(i) for i in range(len(records))]
    assert [e.source for e in examples] == ["teacher", "everyday", ""]
    pad = tokenizer.pad_token_id
    collator = Collator(builder, False, pad, level_targets=True, level_sources=["everyday"])
    assert collator(examples)["level_rows"].tolist() == [False, True, False]


def test_records_keep_their_source(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    rows = [
        {"text": "a", "all_labels": ["x"], "true_labels": ["x"], "source": "usage"},
        {"text": "b", "all_labels": ["x"], "true_labels": []},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [record.source for record in load_records(path)[0]] == ["usage", ""]
    path.write_text(json.dumps({**rows[0], "source": 3}) + "\n")
    with pytest.raises(DataError, match=r"records.jsonl:1: source"):
        load_records(path)


def test_level_loss_needs_single_label_and_a_positive_scale(tmp_path: Path) -> None:
    options = {"model": "m", "train_data": "d.jsonl", "output_dir": str(tmp_path), "level_loss": 0.5}
    with pytest.raises(TrainConfigError, match="level_loss"):
        config_from_dict(options).validate()
    single = {**options, "problem_type": "single_label"}
    with pytest.raises(TrainConfigError, match="level_scale"):
        config_from_dict({**single, "level_scale": 0.0}).validate()
    with pytest.raises(TrainConfigError, match="level_loss"):
        config_from_dict({**single, "level_loss": -1.0}).validate()
    config_from_dict(single).validate()
    with pytest.raises(TrainConfigError, match="level_sources"):
        config_from_dict({**single, "level_loss": 0.0, "level_sources": ["usage"]}).validate()
    with pytest.raises(TrainConfigError, match="level_sources"):
        config_from_dict({**single, "level_sources": []}).validate()
    config_from_dict({**single, "level_sources": ["usage", "everyday"]}).validate()


def test_one_label_calls_train_their_level_only_with_the_level_loss(backbone_dir, tmp_path: Path) -> None:
    # "Is this about sports?" asked alone: the softmax over one candidate is always 1, so it trains
    # nothing; the level term must teach the match yes and the bread no.
    records = [Record(f"the team won the match number {i}", ["sports"], {"sports": 1.0}) for i in range(8)]
    records += [Record(f"we baked bread with butter number {i}", ["sports"], {}) for i in range(8)]

    def level_probabilities(weight: float, sources: list[str] | None = None) -> tuple[float, float]:
        config = config_from_dict(
            {
                "level_sources": sources,
                "model": str(backbone_dir("bert")),
                "train_data": "(in memory)",
                "output_dir": str(tmp_path / f"{weight}-{sources}"),
                "model_options": {"architecture_type": "bi-encoder", "pooling_strategy": "avg"},
                "problem_type": "single_label",
                "level_loss": weight,
                "level_scale": 2.0,
                "level_bias": -1.0,
                "max_length": 64,
                "max_steps": 24,
                "batch_size": 8,
                "head_lr": 1e-2,
                "encoder_lr": 1e-2,
                "warmup_ratio": 0.0,
                "save_every": None,
                "seed": 0,
                "progress": False,
            }
        )
        trainer = Trainer(config, train_records=records)
        trainer.train()
        trainer.model.eval()
        examples = [trainer.train_set.example(0, augment=False), trainer.train_set.example(8, augment=False)]
        batch = trainer.to_device(trainer.collator(examples))
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "level_targets", "level_rows")}
        with torch.no_grad():
            logits = trainer.model(**inputs).logits[:, 0]
        match, bread = torch.sigmoid(2.0 * logits - 1.0).tolist()
        return match, bread

    match, bread = level_probabilities(1.0)
    assert match > 0.5 > bread
    untrained = level_probabilities(0.0)
    assert not (untrained[0] > 0.5 > untrained[1])
    # Records of no source named in `level_sources` add no level term: the run is the untrained one.
    assert level_probabilities(1.0, ["everyday"]) == pytest.approx(untrained, abs=1e-6)


def test_the_level_candidate_recipe_is_the_shipped_one_plus_the_level_term() -> None:
    recipes = Path(__file__).parents[2] / "recipes"
    shipped = asdict(load_config(recipes / "default-model-bi.yaml"))
    candidate = asdict(load_config(recipes / "default-model-bi-level.yaml"))
    changed = {key for key in shipped if shipped[key] != candidate[key]}
    assert changed == {"output_dir", "level_loss", "level_scale", "level_bias", "level_sources"}
    assert candidate["level_sources"] == ["everyday", "usage"] and candidate["level_loss"] == 1.0
