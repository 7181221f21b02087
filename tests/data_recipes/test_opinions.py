"""Self-generated polarity records on a small WordNet in the real file layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from everylabel.data_recipes import opinions

DATA_ADJ = (
    "  1 This software and database is being provided\n"
    "00000001 00 a 01 good 0 003 & 00000002 a 0000 ! 00000003 a 0101 & 00000004 a 0000 | having desirable "
    'qualities; "the meal was good"\n'
    "00000002 00 s 01 superb 0 001 & 00000001 a 0000 | of surpassingly high quality\n"
    "00000003 00 a 01 bad 0 002 ! 00000001 a 0101 & 00000004 a 0000 | having undesirable qualities\n"
    "00000004 00 s 01 so-so 0 000 | neither good nor bad\n"
    "00000005 00 a 01 good 0 000 | exact; precise in measurement\n"
)
INDEX_ADJ = (
    "  1 This software and database is being provided\n"
    "good a 2 2 ! & 2 1 00000001 00000005\n"
    "bad a 1 2 ! & 1 1 00000003\n"
)
DATA_NOUN = (
    "00000010 03 n 01 bridge 0 000 | a structure that allows people to cross a river\n"
    "00000011 03 n 01 kettle 0 000 | a metal pot for boiling water\n"
)


@pytest.fixture
def wordnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data.adj").write_text(DATA_ADJ)
    (tmp_path / "index.adj").write_text(INDEX_ADJ)
    (tmp_path / "data.noun").write_text(DATA_NOUN)
    monkeypatch.setattr(opinions, "WORDNET", tmp_path)


def test_polarity_spreads_one_step_and_drops_conflicts(wordnet) -> None:
    # superb: similar to good; bad: seed and antonym of good; so-so: similar to both -> dropped;
    # the second sense of "good" (precise) is not its most frequent one -> not seeded.
    assert opinions.polar_synsets() == {"00000001": 1, "00000002": 1, "00000003": -1}


def test_opinion_items_are_glosses_examples_and_framed_opinions(wordnet) -> None:
    items = list(opinions.opinion_items(200, seed=3))
    assert ("good: having desirable qualities", 1) in items
    assert ("the meal was good", 1) in items
    assert ("bad: having undesirable qualities", -1) in items
    framed = items[-200:]
    assert {sign for _, sign in framed} == {1, -1}
    for text, sign in framed:
        words = set(text.rstrip(".!?").replace(",", "").replace("?", "").lower().split())
        negated = any(frame.split("{A}")[0].format(S="", s="").strip().lower() in text.lower()
                      for frame in opinions.NEGATED_FRAMES)  # fmt: skip
        if sign == 1:
            assert words & {"good", "superb"} and not words & {"bad"}
        elif negated:
            assert words & {"good", "superb"}  # a negated positive is negative
        else:
            assert "bad" in words


def test_opinion_records_use_one_label_pair_and_neutral(wordnet) -> None:
    records = opinions.opinion_records(100, neutral_share=0.5, seed=1)
    neutral = [r for r in records if r["true_labels"] == ["neutral"]]
    assert len(neutral) == 2  # both noun glosses
    for record in records:
        assert record["source"] == "opinions"
        assert set(record["true_labels"]) <= set(record["all_labels"])
        polar = [label for label in record["all_labels"] if label != "neutral"]
        assert tuple(polar) in opinions.LABEL_PAIRS or tuple(reversed(polar)) in opinions.LABEL_PAIRS
