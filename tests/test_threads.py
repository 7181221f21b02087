"""One Classifier shared by several threads gives exactly the results of serial calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

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


@pytest.mark.slow  # 17 s; eight threads on a tiny model stay in the default run (the first test)
def test_eight_threads_on_the_default_model_with_shortlists_and_calibration() -> None:
    """The default model blends in an embedding backbone (its tokenizer runs on every call), shortlists
    rank with another, and a calibration and its thresholds apply: shared by 8 threads, every call
    gives exactly its serial result."""
    from everylabel.inference.calibration import Calibration

    clf = Classifier.from_pretrained("default", device="cpu", backend="torch", batch_size=4)
    clf.calibration = Calibration(
        "platt", "multi-label", 1.2, -0.1, {"sports 1": (0.9, 0.2)}, {"music 2": 0.3}
    )
    jobs = [job(i) for i in range(16)]
    options = [{"shortlist": 2} if i % 2 else {"multi_label": i % 4 == 0} for i in range(16)]
    serial = [clf.classify(*args, **extra) for args, extra in zip(jobs, options, strict=True)]
    fresh = Classifier.from_pretrained("default", device="cpu", backend="torch", batch_size=4)
    fresh.calibration = clf.calibration  # nothing built yet: the threads race to build the retrievers
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda k: fresh.classify(*jobs[k], **options[k]), range(16)))
    for a, b in zip(serial, threaded, strict=True):
        # MiniLM-sized matrix products run concurrently may round in another order (about 1e-8);
        # a mixed-up tokenizer, label vector or retriever would be off by far more.
        for x, y in zip(a, b, strict=True):
            assert x.scores == pytest.approx(y.scores, abs=1e-6) and x.labels == y.labels
            if x.shortlist is not None and y.shortlist is not None:
                assert x.shortlist.labels == y.shortlist.labels
                assert x.shortlist.retriever_scores == pytest.approx(y.shortlist.retriever_scores, abs=1e-6)
            else:
                assert x.shortlist is None and y.shortlist is None
    assert len(clf._retrievers) == 1
