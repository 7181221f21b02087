"""In-context examples for a bi-encoder: the refit of its label vectors, and its left-out check."""

from __future__ import annotations

import numpy as np
import pytest

from everylabel.inference.example_vectors import (
    RIDGE_STRENGTH,
    example_targets,
    fit_label_vectors,
    refit_label_vectors,
    refit_requests,
)
from everylabel.prompt import Example

# Two labels along the first two axes; example vectors carry the logit scale (10).
LABELS = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])


def scaled(*rows: list[float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float64)
    return 10 * vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def one_hot(*labels: int) -> np.ndarray:
    return np.eye(2)[list(labels)]


def test_a_label_whose_name_misses_its_examples_moves_toward_them() -> None:
    # Label 0's examples lean to label 1's axis but lie mostly along the third: the name alone
    # calls them label 1; label 1's own examples are right as they are.
    examples = scaled([0, 0.6, 0.8, 0], [0.1, 0.6, 0.8, 0.1], [0, 1, 0, 0], [0, 1, 0.1, 0])
    targets = one_hot(0, 0, 1, 1)
    assert (examples @ LABELS.T).argmax(1).tolist() == [1, 1, 1, 1]
    refit = refit_label_vectors(LABELS, examples, targets)
    assert refit is not None and refit.dtype == np.float32
    assert (examples @ refit.T).argmax(1).tolist() == [0, 0, 1, 1]
    unseen = scaled([0, 0.5, 0.85, 0])[0]
    assert int(np.argmax(unseen @ LABELS.T)) == 1 and int(np.argmax(unseen @ refit.T)) == 0
    # held near its own vector, and what one label gains the other gives up (a softmax's gradient
    # sums to zero over the labels)
    assert refit[0] @ LABELS[0] > 0.9
    np.testing.assert_allclose((refit - LABELS).sum(0), 0, atol=1e-5)


def test_the_ridge_term_holds_the_refit_near_the_labels_own_vectors() -> None:
    examples = scaled([0, 0.6, 0.8, 0], [0, 1, 0, 0])
    targets = one_hot(0, 1)
    loose = fit_label_vectors(LABELS, examples, targets)  # the default strength
    tight = fit_label_vectors(LABELS, examples, targets, strength=10 * RIDGE_STRENGTH)
    assert np.linalg.norm(tight - LABELS) < np.linalg.norm(loose - LABELS)

    def gradient(vectors: np.ndarray) -> np.ndarray:  # of the refit's loss, at the default strength
        probabilities = np.exp(examples @ vectors.T)
        probabilities /= probabilities.sum(1, keepdims=True)
        return (probabilities - targets).T @ examples / 2 + RIDGE_STRENGTH * (vectors - LABELS)

    # the refit reaches the optimum, where the gradient vanishes
    assert np.abs(gradient(loose)).max() < 1e-3 * np.abs(gradient(LABELS)).max()


def test_no_refit_when_the_examples_are_right_or_disagree_left_out() -> None:
    right_already = scaled([1, 0.1, 0, 0], [0, 1, 0.2, 0])
    assert refit_label_vectors(LABELS, right_already, one_hot(0, 1)) is None
    # the same vector shown as both labels: left out, each is wrong after a refit on the other,
    # while the label vectors as they are get one of the two right
    twins = scaled([0.2, 1, 0, 0], [0.2, 1, 0, 0])
    assert refit_label_vectors(LABELS, twins, one_hot(0, 1)) is None
    assert refit_label_vectors(LABELS, scaled([0, 1, 0, 0]), one_hot(0)) is None  # one example


def test_many_examples_are_left_out_a_fold_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from everylabel.inference import example_vectors

    calls = []
    real = example_vectors.fit_label_vectors

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(example_vectors, "fit_label_vectors", counting)
    rng = np.random.default_rng(0)
    examples = 10 * rng.normal(size=(40, 4))
    targets = one_hot(*([0, 1] * 20))
    example_vectors.refit_label_vectors(LABELS, examples, targets)
    assert len(calls) in (example_vectors.MAX_FOLDS, example_vectors.MAX_FOLDS + 1)


def test_example_targets_spread_over_an_examples_labels() -> None:
    targets = example_targets([("b",), ("a", "c"), ("c", "c")], ["a", "b", "c"])
    np.testing.assert_allclose(targets, [[0, 1, 0], [0.5, 0, 0.5], [0, 0, 1]])


def test_requests_share_a_refit_and_keep_only_their_own_labels() -> None:
    shown_a = Example("leans to b", ("a",))
    shown_b = Example("plain b", ("b",))
    shown_c = Example("not a candidate here", ("z",))
    texts = {
        ("leans to b", ""): scaled([0, 0.6, 0.8, 0])[0],
        ("plain b", ""): scaled([0, 1, 0, 0])[0],
        ("not a candidate here", ""): scaled([1, 0, 0, 0])[0],
    }
    examples = (shown_a, shown_a, shown_b, shown_b, shown_c)
    table = {"A": LABELS[0], "B": LABELS[1]}
    fits = refit_requests(
        [examples, examples, ()],
        [["a", "b"], ["a", "b"], ["a", "b"]],
        [["A", "B"], ["A", "B"], ["A", "B"]],
        ["", "", ""],
        table,
        texts,
        np.stack,
    )
    assert fits == [0, 0, None]
    assert set(table) == {"A", "B", ("A", 0), ("B", 0)}
    alone = refit_label_vectors(
        LABELS, np.stack([texts[(e.text, "")] for e in examples[:4]]), one_hot(0, 0, 1, 1)
    )
    assert alone is not None
    np.testing.assert_allclose(table[("A", 0)], alone[0])
