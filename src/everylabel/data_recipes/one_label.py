"""The bias of a multi-label calibration fitted on plainly worded texts
(recipes/fit_one_label_calibration.py).

A Platt fit on one-label calls ("is this text about X?", yeses and noes weighing the same) sets 0.5
at even odds for one label asked alone. Asked about all topics at once, a text also needs no other
topic over 0.5: the bias is then moved to where the worst of three shares is best (ties: the
nearest the fit), the shares the obvious-cases suite measures (tests/obvious_cases.py).
"""

from __future__ import annotations

import numpy as np

# Biases tried, as steps from the fitted one: down to 5 below (stricter), up to 1 above.
STEPS = np.arange(-5.0, 1.0001, 0.05)


def worded_shares(
    scale: float, bias: float, alone: np.ndarray, targets: np.ndarray, together: np.ndarray, gold: np.ndarray
) -> dict[str, float]:
    """At `scale` and `bias`: the share of own topics asked alone at >= 0.5, of other topics asked
    alone under 0.5, and of texts whose labels at 0.5 among all topics are exactly their own.

    alone: (calls,) logits of one-label calls, targets (calls,) 1 for a text's own topic, else 0;
    together: (texts, topics) logits of each text asked about all topics, gold (texts,) its own."""
    yes_alone = scale * alone + bias >= 0  # (calls,)
    said = scale * together + bias >= 0  # (texts, topics)
    exact = (said.sum(axis=1) == 1) & said[np.arange(len(gold)), gold]
    return {
        "own_at_least_half": round(float(yes_alone[targets == 1].mean()), 4),
        "other_under_half": round(float(1 - yes_alone[targets == 0].mean()), 4),
        "exact_set": round(float(exact.mean()), 4),
    }


def most_even_bias(
    scale: float,
    fitted: float,
    alone: np.ndarray,
    targets: np.ndarray,
    together: np.ndarray,
    gold: np.ndarray,
) -> tuple[float, dict[str, float]]:
    """The bias among `fitted + STEPS` whose worst share is best (ties: the nearest `fitted`), and
    its shares."""
    candidates = [round(fitted + step, 2) for step in STEPS]
    shares = {bias: worded_shares(scale, bias, alone, targets, together, gold) for bias in candidates}
    best = max(candidates, key=lambda bias: (min(shares[bias].values()), -abs(bias - fitted)))
    return best, shares[best]
