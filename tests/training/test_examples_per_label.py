"""In-context examples per label: each candidate shown with 1 to n records of its own, as a user
shows examples; the official augmentation shows 1 or 2 records sharing any label."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from everylabel.errors import TrainConfigError
from everylabel.training.config import config_from_dict
from everylabel.training.data import Record
from everylabel.training.dataset import Augment, TrainingSet
from everylabel.training.trainer import Trainer
from tests.training.runs import config

TOPICS = ["sports", "cooking", "law", "music"]


def records() -> list[Record]:
    out = []
    for topic in TOPICS:
        for i in range(4):
            out.append(Record(f"{topic} text number {i} " + "word " * 40, TOPICS, {topic: 1.0}))
    return out


def test_every_candidate_gets_one_to_n_examples_of_its_own() -> None:
    data = TrainingSet(records(), Augment(examples=1.0, examples_per_label=2, shuffle_labels=False), seed=0)
    counts_seen = set()
    for index in range(len(data)):
        request = data.example(index).request
        shown = request.examples
        per_label = Counter(label for example in shown for label in example.labels)
        assert set(per_label) == set(request.labels)  # every candidate has examples
        assert all(1 <= n <= 2 for n in per_label.values())
        counts_seen |= set(per_label.values())
        own = " ".join(data.records[index].text.split()[: data.augment.example_words])
        assert all(example.text != own for example in shown)
        assert all(len(example.text.split()) <= data.augment.example_words for example in shown)
        assert len({example.text for example in shown}) == len(shown)  # no record twice
    assert counts_seen == {1, 2}  # the count is drawn, not fixed


def test_per_label_examples_are_seeded_and_the_order_is_shuffled() -> None:
    data = TrainingSet(records(), Augment(examples=1.0, examples_per_label=1, shuffle_labels=False), seed=3)
    assert data.example(0, epoch=1).request.examples == data.example(0, epoch=1).request.examples
    orders = {tuple(e.labels[0] for e in data.example(i).request.examples) for i in range(len(data))}
    assert len(orders) > 1


def test_without_per_label_the_official_one_or_two_examples_stay() -> None:
    data = TrainingSet(records(), Augment(examples=1.0, max_examples=2), seed=0)
    assert all(1 <= len(data.example(i).request.examples) <= 2 for i in range(len(data)))


def test_the_trainer_shows_each_candidate_its_examples(backbone_dir, toy_data, tmp_path: Path) -> None:
    options = {"aug_examples": 1.0, "aug_examples_per_label": 1, "max_length": 512, "shuffle_labels": False}
    trainer = Trainer(config(backbone_dir("bert"), toy_data, tmp_path, **options))
    example_id = trainer.collator.builder.example_id
    batch = trainer.collate(list(range(8)), epoch=0)
    for row, index in zip(batch["input_ids"].tolist(), range(8), strict=True):
        labels = trainer.train_set.example(index).request.labels
        assert row.count(example_id) == len(labels)


def test_a_negative_count_is_refused(tmp_path: Path) -> None:
    raw = {"model": "m", "train_data": "d", "output_dir": str(tmp_path), "aug_examples_per_label": -1}
    with pytest.raises(TrainConfigError, match="aug_examples_per_label"):
        config_from_dict(raw)
