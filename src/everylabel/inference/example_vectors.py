"""Few-shot examples for a bi-encoder: the call's label vectors refitted to what its examples show.

A bi-encoder encodes a text alone, so it cannot read examples beside it as a uni-encoder does.
Its logit for a text and a label is `u . v`, with `u` the text's vector times the model's logit
scale and `v` the label's vector, so examples can move the label vectors instead: the call's labels
are refitted as a softmax classifier of the examples' vectors `u_j`, held near their own vectors
`L` by a ridge term,

    minimise over W:  mean_j  cross_entropy(softmax(u_j W^T), y_j)  +  strength / 2 * |W - L|^2

(`y_j`: example j's labels, spread evenly over them). A label whose examples its name already picks
out barely moves; a label whose name says little of its examples ("acq" for takeover news) moves
toward them. One or two examples per label are few, and a snippet unlike the rest can pull a label
the wrong way, so the refit is kept only where it does better on examples it did not see: each
example is left out in turn, the labels refitted on the others, and the refit is used only if it
gets at least two more left-out examples right than the label vectors as they are get of the same
examples (one more let noise through: on sentiment snippets, whose errors as they are are hard
cases rather than a label's name, it cost a point of accuracy on some draws). Otherwise the call is
scored with its label vectors unchanged.

The engine reads `u_j` by scoring example j against the unit vectors of the label space (the
logits are linear in the label vector), so every runtime gives it without a graph of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from ..errors import InputError
from ..prompt import Example
from .labels import Label

# How strongly the refit label vectors are held to their own (the ridge term's weight): chosen on
# the training splits of Reuters R8 and Rotten Tomatoes and the obvious-cases suite
# (docs/benchmarks.md, "Few-shot examples for the bi-encoder").
RIDGE_STRENGTH: Final = 0.3
# How many more left-out examples the refit must get right than the label vectors as they are
# (chosen with RIDGE_STRENGTH).
LEFT_OUT_MARGIN: Final = 2
# Gradient steps of one refit (enough to reach its optimum closely at RIDGE_STRENGTH with scaled
# vectors of norm 10, as the default model's are; tests/test_example_vectors.py checks it).
FIT_STEPS: Final = 200
# The left-out check refits at most this many times (one example per refit up to this many).
MAX_FOLDS: Final = 16
# The most (examples x labels) one refit takes: it costs about (MAX_FOLDS + 1) * FIT_STEPS * 2 *
# this * the vector width multiply-adds (21 G with 384-wide vectors: 64 labels with two examples
# each is 8,192; about 1 s on a 2-core CPU), and a call refits once per distinct example set.
MAX_REFIT_SIZE: Final = 2**13


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def fit_label_vectors(
    labels: np.ndarray, examples: np.ndarray, targets: np.ndarray, strength: float = RIDGE_STRENGTH
) -> np.ndarray:
    """The ridge-held softmax refit of the module docstring, by accelerated gradient descent (the
    loss is smooth and strongly convex, so Nesterov's momentum for that case converges fast).

    labels: (k, d) the labels' own vectors; examples: (n, d) scaled text vectors; targets: (n, k)
    each example's labels as a distribution. Returns (k, d) float64.
    """
    own = labels.astype(np.float64)
    shown = examples.astype(np.float64)
    count = len(shown)
    # the gradient changes at most this fast (softmax curvature <= 1/2 along any example), and at
    # least as fast as the ridge term
    smooth = 0.5 * float(np.max(np.sum(shown * shown, axis=1))) + strength
    ratio = np.sqrt(smooth / strength)
    momentum = (ratio - 1) / (ratio + 1)
    fitted = own.copy()
    previous = own.copy()
    for _ in range(FIT_STEPS):
        ahead = fitted + momentum * (fitted - previous)
        probabilities = _softmax(shown @ ahead.T)  # (n, k)
        gradient = (probabilities - targets).T @ shown / count + strength * (ahead - own)  # (k, d)
        previous, fitted = fitted, ahead - gradient / smooth
    return fitted


def right(vectors: np.ndarray, examples: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n,) whether each example's best label under `vectors` is one of its own."""
    best = np.argmax(examples @ vectors.T, axis=1)  # (n,)
    return targets[np.arange(len(targets)), best] > 0


def refit_label_vectors(
    labels: np.ndarray, examples: np.ndarray, targets: np.ndarray, strength: float = RIDGE_STRENGTH
) -> np.ndarray | None:
    """The refit label vectors (k, d) float32 where they pass the left-out check of the module
    docstring; None where the call keeps its own vectors (also when every example is already right,
    or there are fewer than two). Past `MAX_FOLDS` examples, they are left out a fold at a time
    (example j in fold j mod `MAX_FOLDS`), which bounds the refits of one check."""
    count = len(examples)
    as_they_are = int(right(labels, examples, targets).sum())
    if count < 2 or as_they_are == count:
        return None
    folds = min(count, MAX_FOLDS)
    fold = np.arange(count) % folds
    left_out_right = 0
    for held in range(folds):
        out = fold == held
        vectors = fit_label_vectors(labels, examples[~out], targets[~out], strength)
        left_out_right += int(right(vectors, examples[out], targets[out]).sum())
    if left_out_right < as_they_are + LEFT_OUT_MARGIN:
        return None
    return fit_label_vectors(labels, examples, targets, strength).astype(np.float32)


def example_targets(example_labels: Sequence[tuple[str, ...]], labels: Sequence[str]) -> np.ndarray:
    """(n, k) each example's labels among `labels`, spread evenly (a row sums to 1); every
    example label must be one of `labels` (the engine checks it first)."""
    position = {label: k for k, label in enumerate(labels)}
    targets = np.zeros((len(example_labels), len(labels)))
    for j, names in enumerate(example_labels):
        chosen = sorted({position[name] for name in names})
        targets[j, chosen] = 1.0 / len(chosen)
    return targets


def check_examples(
    shots: Sequence[tuple[Example, ...]],
    label_sets: Sequence[Sequence[Label]],
    per_text: bool,
    dot_scored: bool,
    architecture: str,
) -> None:
    """A bi-encoder's examples, per text: refused where its logit is not linear in the label vector,
    over `MAX_REFIT_SIZE`, or naming a label that is not one of the text's; each refusal names the
    field (`per_text`: the caller gave one example list per text)."""
    if not dot_scored:
        raise InputError(
            "examples",
            f"this {architecture} model takes no examples: a bi-encoder encodes its text alone, and "
            "examples refit its label vectors only where its logit is the dot product of text and "
            "label vectors (an ONNX export says so in its manifest, `dot_scored`, since exports of "
            "2026-12; export it again)",
        )
    for index, (examples, labels) in enumerate(zip(shots, label_sets, strict=True)):
        if len(examples) * len(labels) > MAX_REFIT_SIZE:
            raise InputError(
                f"examples[{index}]" if per_text else "examples",
                f"{len(examples)} examples x {len(labels)} labels of texts[{index}]: a refit of the "
                f"label vectors takes at most {MAX_REFIT_SIZE} (examples x labels)",
            )
        names = {label.name for label in labels}
        for number, example in enumerate(examples):
            for name in example.labels:
                if name not in names:
                    where = f"examples[{index}][{number}]" if per_text else f"examples[{number}]"
                    raise InputError(
                        f"{where}.labels",
                        f"{name!r} is not one of the labels of texts[{index}] (this model learns from "
                        "examples of the candidate labels only)",
                    )


def refit_key(examples: tuple[Example, ...], pieces: Sequence[str], prompt: str) -> tuple[Any, ...]:
    """What one refit depends on: the examples, the labels in any order, the prompt."""
    return (examples, tuple(sorted(pieces)), prompt)


def refit_requests(
    shown: Sequence[tuple[Example, ...]],
    labels: Sequence[list[str]],
    pieces: Sequence[list[str]],
    prompts: Sequence[str],
    table: dict[Any, Any],
    texts: dict[tuple[str, str], np.ndarray],
    as_array: Callable[[Sequence[Any]], np.ndarray],
) -> list[int | None]:
    """Per request (its examples, label names, label pieces as the table keys them, and prompt): the
    key of its refit label vectors, which this adds to `table` as (piece, key) -> vector, or None
    where the request keeps its own vectors. `texts`: each (example text, prompt)'s scaled vector.
    Requests with the same examples, labels (in any order) and prompt share one refit.

    An example's labels that are not among a request's candidates are left out of that request's
    refit (a shortlist may have dropped them), and an example with none of them with it.
    """
    keys: dict[tuple[Any, ...], int | None] = {}
    out: list[int | None] = []
    for examples, names, slots, prompt in zip(shown, labels, pieces, prompts, strict=True):
        if not examples:
            out.append(None)
            continue
        key = refit_key(examples, slots, prompt)  # any order of the labels: one refit
        if key not in keys:
            keys[key] = None
            order = sorted(range(len(slots)), key=slots.__getitem__)
            ordered = [slots[i] for i in order]
            known = set(names)
            kept = [e for e in examples if known.intersection(e.labels)]
            if kept:
                vectors = refit_label_vectors(
                    as_array([table[piece] for piece in ordered]),
                    np.stack([texts[(e.text, prompt)] for e in kept]),
                    example_targets(
                        [tuple(n for n in e.labels if n in known) for e in kept], [names[i] for i in order]
                    ),
                )
                if vectors is not None:
                    fit = len(keys) - 1
                    keys[key] = fit
                    table.update({(piece, fit): row for piece, row in zip(ordered, vectors, strict=True)})
        out.append(keys[key])
    return out
