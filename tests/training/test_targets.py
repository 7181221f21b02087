"""Single-label targets: a row whose true label is not among its candidates is ignored, never
pointed at an arbitrary slot; the trainer's evaluation takes gold from the record, never names[0]."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from everylabel import create_model
from everylabel.prompt import InputBuilder, Request
from everylabel.training.config import config_from_dict
from everylabel.training.data import Record
from everylabel.training.dataset import Augment, Collator, TrainingExample, TrainingSet, single_label_targets
from everylabel.training.trainer import Trainer


def test_rows_without_a_true_label_get_the_ignore_index() -> None:
    targets = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.0, 0.7]])
    assert single_label_targets(targets).tolist() == [1, -100, 2]
    assert single_label_targets(targets, ignore_index=-1).tolist() == [1, -1, 2]


@pytest.fixture(scope="module")
def collator(backbone_dir) -> Collator:
    model, tokenizer = create_model(backbone_dir("bert"))
    builder = InputBuilder(tokenizer, model.config, 64)
    return Collator(builder, multi_label=False, pad_id=tokenizer.pad_token_id)


def test_dropped_labels_never_become_slot_zero(collator: Collator) -> None:
    labels = ["sports", "politics", "cooking", "weather", "music", "travel"]
    records = [Record(f"text number {i}", labels, {labels[i % 6]: 1.0}) for i in range(60)]
    data = TrainingSet(records, Augment(drop_labels=1.0), seed=3)
    examples = [data.example(i) for i in range(len(records))]
    assert any(1.0 not in e.targets for e in examples)  # the augmentation did drop true labels
    batch = collator(examples)
    for example, target in zip(examples, batch["labels"].tolist(), strict=True):
        if 1.0 in example.targets:
            assert target == example.targets.index(1.0)
        else:
            assert target == -100


def test_a_true_label_left_to_another_label_group_is_ignored(collator: Collator) -> None:
    # 40 labels of 4 tokens do not fit a 64-token window beside the text: the collator keeps the
    # first group; the true label is the last one.
    labels = [f"label number {i}" for i in range(40)]
    targets = [0.0] * 39 + [1.0]
    example = TrainingExample(Request("a short text", labels, [None] * 40), targets)
    batch = collator([example])
    assert batch["max_num_classes"] < 40
    assert batch["labels"].tolist() == [-100]


def test_single_label_evaluation_takes_gold_from_the_record(
    backbone_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = [f"label number {i}" for i in range(40)]
    eval_records = [
        Record("a text with no true label", ["sports", "politics"], {}),
        Record("a text whose label shows last", labels, {labels[-1]: 1.0}),
        Record("a plain one", ["sports", "politics"], {"politics": 1.0}),
    ]
    config = config_from_dict(
        {
            "model": str(backbone_dir("bert")),
            "train_data": "(in memory)",
            "output_dir": str(tmp_path),
            "problem_type": "single_label",
            "max_length": 64,
        }
    )
    trainer = Trainer(config, train_records=eval_records, eval_records=eval_records)
    seen: dict[str, list] = {}

    def spy(gold, predicted, names):
        seen["gold"] = [set(g) for g in gold]
        return {"macro_f1": 0.0}

    monkeypatch.setattr("everylabel.training.trainer.f1_scores", spy)
    trainer.evaluate()
    order = sorted(range(3), key=lambda i: -trainer.eval_set.length(i))  # the evaluation's order
    expected = [set(), {labels[-1]}, {"politics"}]
    assert seen["gold"] == [expected[i] for i in order]


def test_examples_of_soft_target_records_show_only_their_likely_labels() -> None:
    records = [
        Record("a goal in the last minute", ["sports", "cooking"], {"sports": 0.9, "cooking": 0.1}),
        Record("the striker scored twice", ["sports", "law"], {"sports": 0.8, "law": 0.2}),
        Record("simmer the sauce", ["cooking", "sports"], {"cooking": 0.7, "sports": 0.05}),
    ]
    data = TrainingSet(records, Augment(examples=1.0, max_examples=2), seed=0)
    assert data.by_label == {"sports": [0, 1], "cooking": [2]}
    shown = data.example(0).request.examples
    assert shown and all(set(e.labels) <= {"sports", "cooking"} for e in shown)
    for example in shown:
        source = next(r for r in records if r.text == example.text)
        assert list(example.labels) == [k for k, v in source.true_labels.items() if v >= 0.5]


def test_examples_that_leave_the_text_no_room_are_left_out_not_an_error(collator: Collator) -> None:
    from everylabel.prompt import Example

    labels = ["sports", "politics"]
    long_example = Example(" ".join(["word"] * 200), ("sports",))
    short_example = Example("a goal", ("sports",))
    examples = [
        TrainingExample(Request("the match", labels, [None, None], "", (long_example,)), [1.0, 0.0]),
        TrainingExample(Request("the vote", labels, [None, None], "", (short_example,)), [0.0, 1.0]),
    ]
    batch, names = collator.collate(examples)
    assert names == [labels, labels] and batch["labels"].tolist() == [0, 1]
    example_id = collator.builder.example_id
    assert example_id not in batch["input_ids"][0].tolist()
    assert example_id in batch["input_ids"][1].tolist()
