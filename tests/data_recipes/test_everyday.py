"""Records asking about everyday topic names over the sources' own texts."""

from __future__ import annotations

import random
from collections import Counter

from everylabel.data_recipes import everyday
from everylabel.data_recipes.everyday import everyday_records, topics_of

ITEMS = [
    ("bunt: hitting a baseball lightly so it rolls", ["baseball"], "wordnet-domains"),
    ("biopsy: examination of tissue removed from a living body", ["surgery"], "wordnet-domains"),
    ("vim: Vi IMproved - enhanced vi editor", ["editors", "editing"], "debian"),
    ("Never trust a computer you can't throw out a window.", ["computers"], "fortunes"),
    ("dog: a member of the genus Canis", ["animal", "canine"], "wordnet"),  # no everyday topic
]


def test_topics_come_from_labels_and_sources() -> None:
    assert topics_of(["baseball"], "wordnet-domains") == ["sports"]
    assert topics_of(["editors"], "debian") == ["technology"]
    assert topics_of(["games"], "debian-documents") == ["entertainment", "technology"]
    assert topics_of(["animal", "canine"], "wordnet") == []


def test_records_ask_about_everyday_topics_with_right_answers() -> None:
    records = everyday_records(ITEMS, 400, random.Random(0))
    assert len(records) == 400
    truth = {text: topics_of(labels, source) for text, labels, source in ITEMS}
    for record in records:
        assert record["source"] == "everyday"
        assert set(record["all_labels"]) <= set(everyday.TOPIC_LABELS)
        assert len(set(record["all_labels"])) == len(record["all_labels"])
        assert record["true_labels"] == [t for t in truth[record["text"]] if t in record["all_labels"]]
        assert not record["text"].startswith("dog:")
    one_label = [r for r in records if len(r["all_labels"]) == 1]
    assert 0.15 < len(one_label) / len(records) < 0.35
    answers = Counter(bool(r["true_labels"]) for r in one_label)
    assert answers[True] > 0.3 * len(one_label) and answers[False] > 0.3 * len(one_label)
    # topics are drawn evenly, not by how many texts each has
    topics = Counter(t for r in records if len(r["all_labels"]) > 1 for t in r["true_labels"])
    assert set(topics) == {"sports", "health", "technology"}
    assert min(topics.values()) > 0.7 * max(topics.values())


def test_records_are_seeded_and_need_two_topics() -> None:
    assert everyday_records(ITEMS, 50, random.Random(3)) == everyday_records(ITEMS, 50, random.Random(3))
    assert everyday_records(ITEMS[:1], 10, random.Random(0)) == []
