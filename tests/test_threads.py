"""One Classifier shared by several threads gives exactly the results of serial calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from everylabel import Classifier, create_model
from everylabel.prompt import InputBuilder
from tests import oracle

TOPICS = ["sports", "politics", "cooking", "weather", "music", "travel", "health", "science"]


def job(i: int) -> tuple[list[str], list[list[str]]]:
    texts = [f"text {i} number {j} " + "word " * ((i * 7 + j * 3) % 50) for j in range(6)]
    labels = [[f"{TOPICS[(i + j + k) % 8]} {i % 5}" for k in range(1 + (i + j) % 6)] for j in range(6)]
    return texts, labels


def test_eight_threads_give_exactly_the_serial_results(backbone_dir) -> None:
    model, tokenizer = create_model(
        backbone_dir("bert"), dropout=0.0, scorer_type="mlp", pooling_strategy="avg"
    )
    oracle.spread_weights(model)
    clf = Classifier(model, tokenizer, device="cpu", max_length=96, batch_size=4)
    jobs = [job(i) for i in range(32)]
    serial = [clf.classify(texts, labels) for texts, labels in jobs]
    # A tiny label cache, so that threads evict each other's entries while they work.
    clf.builder = InputBuilder(tokenizer, model.config, clf.max_length, label_cache_size=8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(2):
            threaded = list(pool.map(lambda args: clf.classify(*args), jobs))
            for a, b in zip(serial, threaded, strict=True):
                assert [r.scores for r in a] == [r.scores for r in b]  # bitwise, not approximately
                assert [r.labels for r in a] == [r.labels for r in b]


def test_the_label_cache_is_bounded(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"))
    builder = InputBuilder(tokenizer, model.config, 64, label_cache_size=5)
    first = builder.label_ids([f"label {i}" for i in range(12)])
    assert len(builder._label_cache) == 5
    again = builder.label_ids([f"label {i}" for i in range(12)])
    assert first == again and len(builder._label_cache) == 5
