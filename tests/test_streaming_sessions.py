"""Streaming sessions (decoder-kv) against the official `gliclass.streaming` pipeline, their bounds,
threads, and the HTTP routes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from gliclass.streaming import (
    ComposedStrategy,
    EveryChunkStrategy,
    EveryNTokensStrategy,
    NeverStrategy,
    OnDelimiterStrategy,
    SlidingWindowStrategy,
    StreamingZeroShotClassificationPipeline,
)
from transformers import AutoTokenizer

from everylabel import Classifier
from everylabel.errors import InputError, NotSupportedError, TooMuchWork
from everylabel.streaming import (
    Composed,
    EveryChunk,
    EveryNTokens,
    Never,
    OnDelimiter,
    SlidingWindow,
    StreamingSessions,
    parse_strategy,
)
from tests import oracle

SENTENCES = [
    "The home side opened the scoring early",
    "The visitors answered before half time",
    "After the break the rain got heavier and the pitch slowed down",
    "A late penalty decided the match",
    "Fans celebrated in the streets",
    "The coach praised the defence",
    "Tickets for the final sold out",
    "The league confirmed the schedule",
    "Parliament will debate the stadium budget next week",
    "Local shops expect more visitors",
]
CHUNKS = [sentence + ". " for sentence in SENTENCES]
LABELS = ["sports", "politics", "weather", "economy"]


@pytest.fixture(scope="module")
def folder(backbone_dir, tmp_path_factory) -> Path:
    backbone = backbone_dir("qwen3")
    sep = len(AutoTokenizer.from_pretrained(backbone)) + 1
    return oracle.official_checkpoint(
        backbone, tmp_path_factory.mktemp("stream"), architecture_type="decoder-kv", sep_token_index=sep,
        scorer_mlp_hidden_size=64,
    )  # fmt: skip


@pytest.fixture(scope="module")
def classifier(folder: Path) -> Classifier:
    return Classifier.from_pretrained(folder, device="cpu")


STRATEGIES = [
    pytest.param(EveryChunkStrategy, EveryChunk, (), id="every-chunk"),
    pytest.param(EveryNTokensStrategy, EveryNTokens, (12,), id="every-12-tokens"),
    pytest.param(OnDelimiterStrategy, OnDelimiter, ("rain",), id="on-delimiter"),
    pytest.param(SlidingWindowStrategy, SlidingWindow, (16,), id="sliding-window"),
    pytest.param(NeverStrategy, Never, (), id="never"),
]


def scores(output: dict[str, Any]) -> dict[str, float]:
    return {p["label"]: p["score"] for p in output["predictions"]}


def compare(official: Any, ours: StreamingSessions, prompt: str = "Topic:") -> int:
    """Feed CHUNKS to both; every firing equal within 1e-4. Returns how many times they fired."""
    fired = 0
    for index, chunk in enumerate(CHUNKS):
        theirs = official(chunk, LABELS, session_ids="doc", threshold=0.0, prompt=prompt)[0]
        result = ours.feed("doc", chunk, LABELS, prompt=prompt, threshold=0.0)
        assert theirs["triggered"] == (result is not None), f"chunk {index}"
        if result is not None:
            fired += 1
            for label, score in scores(theirs).items():
                assert result.scores[label] == pytest.approx(score, abs=1e-4), f"chunk {index}, {label}"
    return fired


@pytest.mark.parametrize(("theirs", "ours", "args"), STRATEGIES)
@pytest.mark.parametrize("max_cached", [None, 40])
def test_each_strategy_fires_and_scores_as_the_official_streaming_pipeline(
    folder: Path, classifier: Classifier, theirs: Any, ours: Any, args: tuple, max_cached: int | None
) -> None:
    official = StreamingZeroShotClassificationPipeline(
        oracle.load_official(folder), classifier.tokenizer, device="cpu", max_cache_len=max_cached,
        default_strategy=theirs(*args),
    )  # fmt: skip
    sessions = StreamingSessions(classifier, strategy=ours(*args), max_cached_tokens=max_cached)
    fired = compare(official, sessions)
    assert fired == {"never": 0, "on-delimiter": 1, "every-12-tokens": 5}.get(ours(*args).kind, fired)
    assert fired > 0 or ours is Never


def test_a_composed_strategy_from_json_matches_the_official_one(folder: Path, classifier: Classifier) -> None:
    official = StreamingZeroShotClassificationPipeline(
        oracle.load_official(folder), classifier.tokenizer, device="cpu",
        default_strategy=ComposedStrategy(EveryNTokensStrategy(20), SlidingWindowStrategy(24)),
    )  # fmt: skip
    spec = {"kind": "composed", "trigger": {"kind": "every_n_tokens", "n": 20}, "window": "sliding_window"}
    with pytest.raises(InputError, match=r"strategy\.size"):
        parse_strategy(spec)
    spec["window"] = {"kind": "sliding_window", "size": 24}
    assert isinstance(parse_strategy(spec), Composed)
    assert compare(official, StreamingSessions(classifier, strategy=spec)) == 3


def test_evicted_sessions_resume_with_the_scores_they_would_have_had(classifier: Classifier) -> None:
    tight = StreamingSessions(classifier, max_resident=1, max_cached_tokens=30)
    roomy = StreamingSessions(classifier, max_cached_tokens=30)
    for chunk in CHUNKS[:6]:
        for session in ("a", "b"):  # each feed drops the other session's cache
            got = tight.feed(session, chunk + session, LABELS)
            want = roomy.feed(session, chunk + session, LABELS)
            assert got is not None and want is not None
            for label in LABELS:
                assert got.scores[label] == pytest.approx(want.scores[label], abs=1e-5)
        assert tight.describe()["resident"] == 1 and roomy.describe()["resident"] == 2
    assert tight.close("a") and not tight.close("a")
    assert tight.describe()["sessions"] == 1


def test_sessions_fed_from_threads_equal_sessions_fed_in_turn(classifier: Classifier) -> None:
    threaded, sequential = StreamingSessions(classifier), StreamingSessions(classifier)
    results: dict[str, list] = {}

    def feed(session: str) -> None:
        results[session] = [threaded.feed(session, f"{chunk} {session}", LABELS) for chunk in CHUNKS[:4]]

    workers = [threading.Thread(target=feed, args=(f"s{i}",)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for session, got in results.items():
        want = [sequential.feed(session, f"{chunk} {session}", LABELS) for chunk in CHUNKS[:4]]
        for a, b in zip(got, want, strict=True):
            assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_a_recurrent_model_that_reads_the_text_streams(backbone_dir, tmp_path: Path) -> None:
    backbone = backbone_dir("qwen3")
    folder = oracle.official_checkpoint(
        backbone, tmp_path, architecture_type="decoder-kv", scorer_mlp_hidden_size=64, recurrent_steps=3,
        recurrent_read_text=True, sep_token_index=len(AutoTokenizer.from_pretrained(backbone)) + 1,
    )  # fmt: skip
    classifier = Classifier.from_pretrained(folder, device="cpu")
    official = StreamingZeroShotClassificationPipeline(
        oracle.load_official(folder), classifier.tokenizer, device="cpu"
    )
    with pytest.raises(ValueError, match="recurrent_read_text requires text_hidden_states"):
        official(CHUNKS[0], LABELS, session_ids="doc")
    sessions = StreamingSessions(classifier)
    results = [sessions.feed("doc", chunk, LABELS) for chunk in CHUNKS[:3]]
    assert all(r is not None and set(r.scores) == set(LABELS) for r in results)
    assert results[0].scores != results[2].scores  # the text read changes as the document grows


def test_bad_use_is_refused_naming_the_field(classifier: Classifier, backbone_dir, tmp_path: Path) -> None:
    sessions = StreamingSessions(classifier, max_sessions=1)
    sessions.feed("a", "The match.", LABELS, prompt="Topic:")
    with pytest.raises(InputError, match="prompt"):
        sessions.feed("a", "More.", LABELS, prompt="Another prompt:")
    with pytest.raises(TooMuchWork, match="1 sessions are open"):
        sessions.feed("b", "Text.", LABELS)
    with pytest.raises(InputError, match="labels"):
        sessions.feed("a", "Text.", {"topic": ["sports"]})
    with pytest.raises(InputError, match="strategy"):
        StreamingSessions(classifier, strategy={"kind": "every_second"})
    uni = Classifier.from_pretrained(oracle.official_checkpoint(backbone_dir("bert"), tmp_path), device="cpu")
    with pytest.raises(NotSupportedError, match="need a decoder-kv model"):
        StreamingSessions(uni)


def test_http_sessions_answer_as_the_library(classifier: Classifier) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from everylabel.serving import create_app
    from tests.test_serve import wait_for

    library = StreamingSessions(classifier, strategy=EveryNTokens(12))
    with TestClient(create_app(lambda: classifier)) as client:
        wait_for(lambda: client.get("/health").status_code == 200)
        for chunk in CHUNKS[:5]:
            body = {"text": chunk, "labels": LABELS, "strategy": {"kind": "every_n_tokens", "n": 12}}
            answer = client.post("/v1/sessions/doc-1", json=body)
            assert answer.status_code == 200, answer.text
            want = library.feed("doc", chunk, LABELS)
            assert answer.json()["fired"] == (want is not None)
            if want is not None:
                assert answer.json()["result"]["scores"] == pytest.approx(want.scores, abs=1e-5)
        refused = client.post(
            "/v1/sessions/doc-2", json={"text": "a", "labels": LABELS, "strategy": "sometimes"}
        )
        assert refused.status_code == 422 and refused.json()["field"] == "strategy"
        unknown = client.post("/v1/sessions/doc-2", json={"text": "a", "labels": LABELS, "colour": "red"})
        assert unknown.status_code == 422 and unknown.json()["field"] == "colour"
        assert client.delete("/v1/sessions/doc-1").status_code == 200
        assert client.delete("/v1/sessions/doc-1").status_code == 404
    from everylabel.serving import ServeSettings

    with TestClient(create_app(lambda: classifier, ServeSettings(max_request_tokens=8))) as client:
        wait_for(lambda: client.get("/health").status_code == 200)
        long = client.post("/v1/sessions/doc", json={"text": " ".join(SENTENCES), "labels": LABELS})
        assert long.status_code == 413 and long.json()["field"] == "text"


def test_http_sessions_of_another_architecture_answer_404_naming_why(backbone_dir, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from everylabel.serving import create_app
    from tests.test_serve import wait_for

    uni = Classifier.from_pretrained(oracle.official_checkpoint(backbone_dir("bert"), tmp_path), device="cpu")
    with TestClient(create_app(lambda: uni)) as client:
        wait_for(lambda: client.get("/health").status_code == 200)
        answer = client.post("/v1/sessions/doc", json={"text": "a match", "labels": LABELS})
        assert answer.status_code == 404 and "need a decoder-kv model" in answer.json()["detail"]
