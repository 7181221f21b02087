import random

import numpy as np
import pytest

from everylabel.data_recipes.distillation import (
    SIZE_WEIGHTS,
    background_centred,
    cut_words,
    distillation_records,
    fit_calibration,
    sample_candidates,
    teacher_targets,
)


def test_a_label_target_does_not_depend_on_its_neighbours():
    cosines = np.array([[0.5, 0.1, 0.2]], dtype=np.float32)
    background = np.array([[0.1, 0.3]], dtype=np.float32)  # mean 0.2
    alone = background_centred(cosines[:, :1], background)
    together = background_centred(cosines, background)
    assert alone[0, 0] == pytest.approx(0.3)
    assert together[0, 0] == alone[0, 0]
    assert teacher_targets(together, 10.0, -1.0)[0, 0] == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_fit_calibration_recovers_a_logistic_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.2, 20000)
    p = 1 / (1 + np.exp(-(12 * x - 2)))
    y = (rng.random(20000) < p).astype(float)
    slope, bias = fit_calibration(x, y)
    assert slope == pytest.approx(12, rel=0.1)
    assert bias == pytest.approx(-2, abs=0.2)
    with pytest.raises(ValueError, match="same"):
        fit_calibration(np.zeros(3), np.zeros(2))


def test_a_balanced_fit_puts_even_odds_where_the_classes_meet():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(1, 1, 1000), rng.normal(-1, 1, 9000)])  # 1 yes in 10
    y = np.concatenate([np.ones(1000), np.zeros(9000)])
    slope, bias = fit_calibration(x, y, balanced=True)
    assert -bias / slope == pytest.approx(0.0, abs=0.1)  # halfway between the two classes' means
    plain_slope, plain_bias = fit_calibration(x, y)
    assert -plain_bias / plain_slope > 0.9  # the noes' majority pushes 0.5 toward the yeses
    with pytest.raises(ValueError, match="both"):
        fit_calibration(x, np.zeros_like(x), balanced=True)


def test_candidates_vary_in_size_and_often_hold_the_best_label():
    row = np.linspace(1, 0, 200)  # label 0 is the teacher's best
    rng = random.Random(0)
    picks = [sample_candidates(row, rng) for _ in range(2000)]
    sizes = [len(p) for p in picks]
    assert set(sizes) <= set(SIZE_WEIGHTS) and sizes.count(1) > 300
    assert all(len(set(p)) == len(p) for p in picks)
    with_best = sum(any(i < 3 for i in p) for p in picks) / len(picks)
    assert 0.55 < with_best < 0.9


def test_distillation_records_are_official_records_with_soft_targets():
    vocabulary = ["sports", "cooking", "law", "music"]
    centred = np.array([[0.4, -0.1, 0.0, 0.05], [-0.1, 0.3, 0.0, 0.0]], dtype=np.float32)
    records = distillation_records(["a goal", "a recipe"], centred, vocabulary, 10.0, -1.0, seed=1)
    assert len(records) == 2
    for record, row in zip(records, centred, strict=True):
        assert set(record["true_labels"]) == set(record["all_labels"])
        for label, target in record["true_labels"].items():
            expected = teacher_targets(row[vocabulary.index(label)], 10.0, -1.0)
            assert target == pytest.approx(float(expected), abs=1e-4)
    with pytest.raises(ValueError, match="shape"):
        distillation_records(["one"], centred, vocabulary, 1.0, 0.0)


def test_cut_words():
    assert cut_words("a b c d", 2) == "a b"
    assert cut_words("a  b", 5) == "a  b"
