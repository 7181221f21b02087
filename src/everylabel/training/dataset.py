"""Training examples from records: label shuffling, sampled negatives and the official augmentations.

Every random choice for record i in epoch e comes from its own generator seeded by (seed, e, i),
so an example is the same whenever it is built: a resumed run sees exactly the data it would have.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..errors import InputError
from ..label_tokens import LabelTokens
from ..padding import pad_rows
from ..prompt import Example, InputBuilder, Request
from .data import Record


@dataclass
class Augment:
    """How each example is varied; probabilities are per example."""

    shuffle_labels: bool = True
    max_labels: int = 50  # labels shown with one text, true labels first to be kept
    negatives: int = 0  # labels from the pool of all labels added as negatives
    drop_labels: float = 0.0  # keep a random subset of the candidates
    add_random_labels: float = 0.0  # add a random number of pool labels as negatives
    descriptions: float = 0.0  # write "label: description" next to the text
    examples: float = 0.0  # show records that share a label as in-context examples
    max_examples: int = 2
    # > 0: instead, each candidate gets 1 to this many examples of its own (as a user shows examples)
    examples_per_label: int = 0
    example_words: int = 24  # an example's text is cut to this many words (as a user pastes one)
    example_max_labels: int = 10  # examples only beside at most this many candidates (they fit)


@dataclass
class TrainingExample:
    request: Request
    targets: list[float]  # one per label of the request, in [0, 1]
    source: str = ""  # the record's source (`Record.source`)


class TrainingSet:
    """Records turned into training examples, deterministic per (seed, epoch, index)."""

    def __init__(
        self,
        records: Sequence[Record],
        augment: Augment | None = None,
        descriptions: dict[str, list[str]] | None = None,
        seed: int = 0,
    ) -> None:
        self.records = list(records)
        self.augment = augment or Augment()
        self.descriptions = descriptions or {}
        self.seed = seed
        self.pool = sorted({label for record in self.records for label in record.all_labels})
        self.by_label: dict[str, list[int]] = defaultdict(list)
        if self.augment.examples > 0:
            for index, record in enumerate(self.records):
                for label in positive_labels(record):
                    self.by_label[label].append(index)

    def __len__(self) -> int:
        return len(self.records)

    def length(self, index: int) -> int:
        """A cheap size estimate used to group similar lengths into a batch."""
        record = self.records[index]
        return len(record.text) + 8 * len(record.all_labels)

    def example(self, index: int, epoch: int = 0, augment: bool = True) -> TrainingExample:
        record = self.records[index]
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        aug = self.augment if augment else Augment(shuffle_labels=False, max_labels=len(record.all_labels))
        labels = list(record.all_labels)
        targets = dict(record.true_labels)
        text = record.text

        if aug.drop_labels and len(labels) > 1 and rng.random() < aug.drop_labels:
            labels = rng.sample(labels, k=rng.randint(1, len(labels)))
        extra = 0
        if aug.add_random_labels and rng.random() < aug.add_random_labels:
            extra += rng.randint(1, len(labels) + 1)
        extra += aug.negatives
        if extra and self.pool:
            present = set(labels)
            candidates = rng.sample(self.pool, k=min(len(self.pool), extra + len(present)))
            labels += [label for label in candidates if label not in present][:extra]
        # Keep true labels when there are too many candidates.
        if len(labels) > aug.max_labels:
            positives = [label for label in labels if targets.get(label, 0) > 0]
            negatives = [label for label in labels if targets.get(label, 0) <= 0]
            labels = (positives + negatives)[: aug.max_labels]
        if aug.shuffle_labels:
            rng.shuffle(labels)

        if aug.descriptions and self.descriptions and rng.random() < aug.descriptions:
            described = [label for label in labels if label in self.descriptions]
            chosen = rng.sample(described, k=min(len(described), rng.randint(1, 3)))
            notes = " ".join(f"{label}: {rng.choice(self.descriptions[label])}" for label in chosen)
            if notes:
                text = f"{notes} {text}" if rng.random() < 0.5 else f"{text} {notes}"

        examples = [
            Example(e["text"], tuple(e.get("labels", e.get("true_labels", [])))) for e in record.examples
        ]
        if aug.examples and len(labels) <= aug.example_max_labels and rng.random() < aug.examples:
            if aug.examples_per_label:
                examples += self._examples_per_label(index, labels, rng, aug.examples_per_label)
            else:
                examples += self._sample_examples(index, labels, rng, aug.max_examples)

        request = Request(text, labels, [None] * len(labels), record.prompt, examples)
        return TrainingExample(request, [targets.get(label, 0.0) for label in labels], record.source)

    def _sample_examples(
        self, index: int, labels: list[str], rng: random.Random, limit: int
    ) -> list[Example]:
        shared = sorted(
            {other for label in labels for other in self.by_label.get(label, []) if other != index}
        )
        picked = rng.sample(shared, k=min(limit, len(shared)))
        return [self._shown(i) for i in picked]

    def _examples_per_label(
        self, index: int, labels: list[str], rng: random.Random, most: int
    ) -> list[Example]:
        """1 to `most` records of each candidate's own (never this one), in a shuffled order; a
        candidate no other record has gets none."""
        picked: list[int] = []
        for label in labels:
            own = [other for other in self.by_label.get(label, []) if other != index and other not in picked]
            picked += rng.sample(own, k=min(rng.randint(1, most), len(own)))
        rng.shuffle(picked)
        return [self._shown(i) for i in picked]

    def _shown(self, index: int) -> Example:
        """A record as an in-context example: its text cut to `example_words`, its positive labels."""
        record = self.records[index]
        text = " ".join(record.text.split()[: self.augment.example_words])
        return Example(text, tuple(positive_labels(record)))


def positive_labels(record: Record) -> list[str]:
    """The labels a record's text is shown with as an example: targets of at least 0.5 (soft
    targets from a teacher give every candidate a score; only the likely ones are its labels)."""
    return [label for label, target in record.true_labels.items() if target >= 0.5]


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True
) -> list[list[int]]:
    """The batches of one epoch: shuffled, and within blocks of 50 batches sorted by length.

    Deterministic in (seed, epoch), so a resumed run can skip to the batch it stopped at.
    """
    rng = random.Random(f"{seed}:order:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        block = batch_size * 50
        order = [
            i
            for start in range(0, len(order), block)
            for i in sorted(order[start : start + block], key=lambda j: -lengths[j])
        ]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


class Collator:
    """Training examples -> padded tensors; one model input per example (the first label group)."""

    def __init__(
        self,
        builder: InputBuilder,
        multi_label: bool,
        pad_id: int,
        ignore_index: int = -100,
        label_tokens: LabelTokens | None = None,
        soft_targets: bool = False,
        level_targets: bool = False,
        level_sources: Sequence[str] | None = None,
    ) -> None:
        self.builder = builder
        self.soft_targets = soft_targets  # single-label: scores over the candidates, not their argmax
        self.level_targets = level_targets  # single-label: also each slot's score, for the level loss
        # the rows the level loss reads: examples of these sources (None: every row)
        self.level_sources = None if level_sources is None else frozenset(level_sources)
        self.label_tokens = label_tokens  # a bi-encoder's: its labels go to the label encoder
        self.multi_label = multi_label
        self.pad_id = pad_id
        self.ignore_index = ignore_index

    def __call__(self, examples: Sequence[TrainingExample]) -> dict[str, torch.Tensor]:
        return self.collate(examples)[0]

    def collate(self, examples: Sequence[TrainingExample]) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
        """The padded batch and, per row, the names of the labels in its slots."""
        passes, plans = self.builder.build([self._fitting(e.request) for e in examples], "warn")
        rows: list[list[int]] = []
        label_rows: list[list[int]] = []  # the label blocks, where they are their own sequence
        targets: list[list[float]] = []
        names: list[list[str]] = []
        leveled: list[bool] = []  # per row, whether the level loss reads it
        pieces: list[list[str]] = []  # per row, its labels as the label encoder reads them
        for item in passes:
            if item.group or item.window:
                continue  # labels that did not fit beside the text are left out of this example
            start, end = plans[item.request].groups[0]
            rows.append(item.input_ids)
            if item.label_ids is not None:
                label_rows.append(item.label_ids)
            targets.append(examples[item.request].targets[start:end])
            leveled.append(self.level_sources is None or examples[item.request].source in self.level_sources)
            request = examples[item.request].request
            names.append(request.labels[start:end])
            described = zip(request.labels[start:end], request.descriptions[start:end], strict=True)
            pieces.append([self.builder.label_piece(name, description) for name, description in described])
        width = max(len(r) for r in rows)
        slots = max(len(t) for t in targets)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.zeros((len(rows), slots), dtype=torch.float)
        for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
            labels[i, : len(target)] = torch.tensor(target)
        batch = {"input_ids": ids, "attention_mask": mask, "max_num_classes": torch.tensor(slots)}
        if self.multi_label:
            batch["labels"] = labels
        elif self.soft_targets:
            batch["labels"] = soft_label_targets(labels)
        else:
            batch["labels"] = single_label_targets(labels, self.ignore_index)
        if self.level_targets and not self.multi_label:
            batch["level_targets"] = labels  # (batch, slots) scores, padding slots 0
            batch["level_rows"] = torch.tensor(leveled)  # (batch,) bool
        if self.label_tokens is not None:  # the label encoder reads each label as inference does
            batch.update(self.label_tokens.batch(pieces))
        if label_rows:
            block_ids, block_mask = pad_rows(label_rows, self.pad_id)  # (batch, label_seq) each
            batch.update(
                class_input_ids=torch.from_numpy(block_ids), class_attention_mask=torch.from_numpy(block_mask)
            )
        return batch, names

    def _fitting(self, request: Request) -> Request:
        """The request, or without its in-context examples when they leave the text too little room
        (augmentation added them; the example itself must still train)."""
        if not request.examples:
            return request
        try:
            self.builder.build([request], "warn")
        except InputError:
            return replace(request, examples=())
        return request


def soft_label_targets(targets: torch.Tensor) -> torch.Tensor:
    """(batch, slots) scores -> the same rows normalised to sum to 1 over the candidates (padding
    slots hold 0); a row with no score on any candidate stays all zero and trains nothing.

    [[0.2, 0.6, 0.2], [1, 1, 0], [0, 0, 0]] -> [[0.2, 0.6, 0.2], [0.5, 0.5, 0], [0, 0, 0]].
    """
    if (targets < 0).any():
        raise ValueError("soft targets must be scores >= 0")
    total = targets.sum(dim=-1, keepdim=True)
    return targets / total.clamp(min=torch.finfo(targets.dtype).tiny)


def single_label_targets(targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """(batch, slots) scores -> (batch,) the best candidate's index, or `ignore_index` for a row whose
    true label is not among its candidates (dropped by augmentation, left to another label group,
    or none given): such a row must not be trained toward an arbitrary slot.

    [[0, 1, 0], [0, 0, 0]] -> [1, ignore_index].
    """
    best, index = targets.max(dim=-1)
    return torch.where(best > 0, index, torch.full_like(index, ignore_index))
