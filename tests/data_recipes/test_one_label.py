"""The bias of a one-label calibration: the shares it is chosen by, and the choice."""

from __future__ import annotations

import numpy as np
import pytest

from everylabel.data_recipes.one_label import most_even_bias, worded_shares

# Three texts, three topics; each text's own topic is on the diagonal. Text 0 also scores topic 1
# high (a second topic at a loose bias); text 2's own topic is weak (no label at a strict bias).
TOGETHER = np.array(
    [
        [4.0, 1.0, -3.0],
        [-3.0, 5.0, -2.0],
        [-2.0, -3.0, 2.0],
    ]
)
GOLD = np.array([0, 1, 2])
ALONE = TOGETHER.ravel()  # a bi-encoder's one-label logits are its logits among all topics
TARGETS = np.eye(3).ravel()


def test_the_shares_at_a_bias() -> None:
    loose = worded_shares(1.0, 0.0, ALONE, TARGETS, TOGETHER, GOLD)
    assert loose == {
        "own_at_least_half": 1.0,
        "other_under_half": pytest.approx(5 / 6, abs=1e-4),
        "exact_set": 0.6667,
    }
    strict = worded_shares(1.0, -3.0, ALONE, TARGETS, TOGETHER, GOLD)
    assert strict == {"own_at_least_half": 0.6667, "other_under_half": 1.0, "exact_set": 0.6667}


def test_the_bias_whose_worst_share_is_best_nearest_the_fit() -> None:
    # From -2 (text 2's own topic still at 0.5) to just under -1 (text 0's second topic under it)
    # every share is 1; of those biases, the nearest the fit wins.
    bias, shares = most_even_bias(1.0, 0.0, ALONE, TARGETS, TOGETHER, GOLD)
    assert bias == pytest.approx(-1.05)
    assert shares == {"own_at_least_half": 1.0, "other_under_half": 1.0, "exact_set": 1.0}
    bias, _ = most_even_bias(1.0, -2.5, ALONE, TARGETS, TOGETHER, GOLD)
    assert bias == pytest.approx(-2.0)  # from below, the nearest bias that keeps text 2's own topic
