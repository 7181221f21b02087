"""The training-data builder on small files in the shape of WordNet, fortunes and apt's lists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from everylabel.data_recipes import corpus

WORDNET_NOUN = (
    "  1 This software and database is being provided\n"
    "00015388 03 n 01 animal 0 001 ~ 01905661 n 0000 | a living organism that moves\n"
    '02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "it barked"\n'
    "02083346 05 n 01 canine 0 000 | any of various fissiped mammals with nonretractile claws\n"
    "00471613 04 n 01 baseball 0 000 | a ball game played with a bat and ball between two teams\n"
    "00475000 04 n 01 bunt 0 001 ;c 00471613 n 0000 | (baseball) hitting a baseball lightly so it rolls\n"
    '00475100 04 n 01 squeeze 0 001 ;c 00471613 n 0000 | (baseball) a bunt; "he laid down a squeeze"; '
    '"the squeeze scored the runner from third"; "a squeeze"\n'
)
FORTUNE = (
    "Never trust a computer\nyou can't throw out a window.\n%\nshort\n%\n"
    "The code compiles, ship it says the manager.\n"
)
DUMP = (
    "Package: vim\nSection: editors\nDescription: Vi IMproved - enhanced vi editor\n"
    "Tag: implemented-in::c, use::editing, works-with::text,\n role::program\n\n"
    "Package: foo\nSection: non-free/oddball\nDescription: unknown section here\n\n"
)


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wordnet = tmp_path / "wordnet"
    wordnet.mkdir()
    (wordnet / "data.noun").write_text(WORDNET_NOUN)
    for part in ("verb", "adj", "adv"):
        (wordnet / f"data.{part}").write_text("")
    fortunes = tmp_path / "fortunes"
    fortunes.mkdir()
    (fortunes / "computers").write_text(FORTUNE)
    (fortunes / "computers.dat").write_text("binary index")
    (fortunes / "zippy").write_text("yow, are we having fun yet?\n")
    monkeypatch.setattr(corpus, "WORDNET", wordnet)
    monkeypatch.setattr(corpus, "FORTUNES", fortunes)
    monkeypatch.setattr(
        corpus.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=DUMP, stderr="")
    )


def test_wordnet_gloss_to_category_and_hypernym(sources) -> None:
    items = list(corpus.wordnet_items())
    dog = next(i for i in items if i[0].startswith("dog:"))
    assert dog[1] == ["animal", "canine"] and "genus Canis" in dog[0]
    assert all(i[2] == "wordnet" for i in items)


def test_wordnet_topic_domains_without_the_giveaway(sources) -> None:
    assert list(corpus.wordnet_domain_items()) == [
        ("bunt: hitting a baseball lightly so it rolls", ["baseball"], "wordnet-domains"),
        (
            'squeeze: a bunt; "he laid down a squeeze"; '
            '"the squeeze scored the runner from third"; "a squeeze"',
            ["baseball"],
            "wordnet-domains",
        ),
    ]


def test_usage_examples_alone_with_their_synsets_labels(sources) -> None:
    """Each quoted example of four words or more, once, with the labels of every gloss quoting it
    (here the synset's topic domain, then its category); "it barked" and "a squeeze" are too short."""
    assert list(corpus.wordnet_usage_items()) == [
        ("he laid down a squeeze", ["baseball", "action"], "wordnet-usage"),
        ("the squeeze scored the runner from third", ["baseball", "action"], "wordnet-usage"),
    ]


def test_topic_domains_are_keyed_by_part_of_speech_and_offset(sources) -> None:
    """The same offset names unrelated synsets in data.noun and data.verb: a domain pointer to a noun
    takes the noun's lemma, whichever file is read last."""
    wordnet = corpus.WORDNET
    (wordnet / "data.verb").write_text(
        "00471613 38 v 01 pitch 0 000 | throw or toss with a light motion\n"
        "01234567 38 v 01 slide 0 001 ;c 00471613 n 0000 | (baseball) reach a base by sliding\n"
    )
    items = list(corpus.wordnet_domain_items())
    assert ("bunt: hitting a baseball lightly so it rolls", ["baseball"], "wordnet-domains") in items
    assert ("slide: reach a base by sliding", ["baseball"], "wordnet-domains") in items
    assert all(labels == ["baseball"] for _, labels, _ in items)


def test_debian_sections_and_tags(sources) -> None:
    items = list(corpus.debian_items())
    assert items == [("vim: Vi IMproved - enhanced vi editor", ["text editor", "editing", "text"], "debian")]


def test_fortunes_by_category_file(sources) -> None:
    items = list(corpus.fortune_items())
    assert [i[1] for i in items] == [["computers"], ["computers"]]  # "short" is too short; zippy skipped
    assert items[0][0] == "Never trust a computer you can't throw out a window."


def test_records_are_official_format_with_negatives(sources) -> None:
    records = corpus.build_records(negatives=(1, 2), seed=1)
    assert {r["source"] for r in records} == {"wordnet", "wordnet-domains", "debian", "fortunes"}
    for record in records:
        assert set(record["true_labels"]) <= set(record["all_labels"])
        assert len(set(record["all_labels"])) == len(record["all_labels"])


def test_topic_documents_join_entries_of_their_topics() -> None:
    import random

    items = [
        (f"{topic} entry {i}.", [topic, f"other {i}"], "src")
        for topic in ("law", "food", "art")
        for i in range(9)
    ]
    items.append(("lonely entry.", ["rare topic"], "src"))  # fewer than 8 entries: never a topic
    documents = corpus.topic_documents(items, 200, random.Random(0))
    assert len(documents) == 200
    mixed = 0
    for text, labels, source in documents:
        assert source == "src-documents"
        assert 1 <= len(labels) <= 2 and set(labels) <= {"law", "food", "art"}
        parts = text.split(". ")
        assert len(parts) >= 2
        assert {part.split(" entry")[0] for part in parts} == set(labels)  # every entry from its topics
        mixed += len(labels) == 2
    assert 10 < mixed < 80  # about one in five mixes two topics
    assert corpus.topic_documents(items[:9], 5, random.Random(0)) == []  # one topic: nothing to tell apart


def test_build_records_adds_documents_and_opinions(sources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "opinion_records", lambda count, seed: [{"source": "opinions", "n": count}])
    records = corpus.build_records(negatives=(1, 2), seed=1, documents_per_source=0, opinions=7)
    assert [r for r in records if r["source"] == "opinions"] == [{"source": "opinions", "n": 7}]


def test_build_records_appends_everyday_records_leaving_the_rest(sources) -> None:
    plain = corpus.build_records(negatives=(1, 2), seed=1)
    records = corpus.build_records(negatives=(1, 2), seed=1, everyday=30)
    assert records[: len(plain)] == plain  # the same records and held-out head as without them
    added = records[len(plain) :]
    assert len(added) == 30 and {r["source"] for r in added} == {"everyday"}
    # the fixture's texts: a baseball gloss (sports), a computers fortune and vim (technology)
    assert {t for r in added for t in r["true_labels"]} == {"sports", "technology"}
