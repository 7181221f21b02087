"""`Classifier.classify_iter`: any iterable in, results in input order, the same as `classify`."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator

import pytest

from everylabel import Classifier, InputError, TruncationWarning, create_model
from tests import oracle

LABELS = ["sports", "politics", "cooking"]
WORDS = ["match", "goal", "vote", "law", "bread", "oven", "rain", "team", "budget", "salt"]


def text(i: int) -> str:
    return " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + (i * 13) % 40))


@pytest.fixture(scope="module")
def clf(backbone_dir) -> Classifier:
    model, tokenizer = create_model(
        backbone_dir("bert"), dropout=0.0, scorer_type="mlp", pooling_strategy="avg"
    )
    oracle.spread_weights(model)
    return Classifier(model, tokenizer, device="cpu", max_length=64, min_text_tokens=8, batch_size=8)


def same(a, b) -> None:
    assert [r.index for r in a] == [r.index for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.labels == y.labels and x.truncated == y.truncated and x.empty == y.empty
        assert x.scores == pytest.approx(y.scores, abs=1e-5)


def test_a_generator_gives_the_results_of_classify_in_order(clf: Classifier) -> None:
    texts = [text(i) if i % 11 else "" for i in range(70)]  # empty texts among them
    expected = clf.classify(texts, LABELS)
    streamed = list(clf.classify_iter((t for t in texts), LABELS, window=16))
    same(streamed, expected)


def test_memory_stays_bounded_by_the_window(clf: Classifier) -> None:
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield text(i)

    results = clf.classify_iter(endless(), LABELS, window=10)
    first = list(itertools.islice(results, 25))
    assert [r.index for r in first] == list(range(25))
    assert pulled <= 30  # never more than one window ahead of what was yielded


def test_per_text_arguments_from_lists_and_iterators(clf: Classifier) -> None:
    texts = [text(i) for i in range(23)]
    labels = [LABELS[: 1 + i % 3] for i in range(23)]
    prompts = [None if i % 2 else "topic" for i in range(23)]
    thresholds = [0.1 * (i % 9) for i in range(23)]
    expected = clf.classify(texts, labels, prompt=prompts, threshold=thresholds)
    same(list(clf.classify_iter(texts, labels, prompt=prompts, threshold=thresholds, window=5)), expected)
    lazily = clf.classify_iter(
        iter(texts), iter(labels), prompt=iter(prompts), threshold=iter(thresholds), window=5
    )
    same(list(lazily), expected)


def test_bad_input_names_its_index_in_the_whole_stream(clf: Classifier) -> None:
    texts = [text(i) for i in range(30)]
    labels = [list(LABELS) for _ in range(30)]
    labels[23] = ["sports", "sports"]
    results = clf.classify_iter(iter(texts), iter(labels), window=10)
    done = list(itertools.islice(results, 20))  # the windows before the bad one are delivered
    assert len(done) == 20
    with pytest.raises(InputError, match=r"^labels\[23\]\[1\]: duplicate label 'sports'"):
        next(results)
    bad_text: list = [text(0)] * 14 + [None]
    with pytest.raises(InputError, match=r"^texts\[14\]: expected a string"):
        list(clf.classify_iter(bad_text, LABELS, window=4))
    with pytest.raises(InputError, match=r"^labels: no value for texts\[3\]"):
        list(clf.classify_iter(texts[:5], iter(labels[:3]), window=2))
    with pytest.raises(InputError, match=r"^labels: more values than the 5 texts"):
        list(clf.classify_iter(texts[:5], labels[:6], window=2))


def test_truncation_is_reported_once_for_the_stream(clf: Classifier) -> None:
    texts = [" ".join(WORDS * 12)] * 3 + ["short"] * 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncationWarning)
        results = list(clf.classify_iter(texts, LABELS, window=2))
    cut = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(cut) == 1 and "3 of 8 texts were cut" in str(cut[0].message)
    assert [r.truncated for r in results] == [True] * 3 + [False] * 5
