"""Dictionary definitions by subject, on small databases in dictd's format (index + gzip text)."""

from __future__ import annotations

import gzip
from pathlib import Path

from everylabel.data_recipes import corpus
from everylabel.data_recipes.dictionaries import (
    dictd_number,
    foldoc_items,
    gcide_items,
    gcide_noun_definitions,
)

GCIDE = [
    (
        "Aardvark",
        'Aardvark \\Aard"vark\\, n. [D., earth-pig.]\n   (Zool.)\n   An edentate mammal of the genus\n'
        "   {Orycteropus}, which feeds on ants.\n   [1913 Webster]\n",
    ),
    (
        "Gripe",
        "Gripe \\Gripe\\, n.\n   1. Grasp; clutch.\n   [1913 Webster]\n\n"
        "   2. (Mach.) A device for grasping or holding anything; a brake to stop a wheel.\n"
        "   [1913 Webster]\n\n   3. (Naut.) The piece of timber at the forefoot of a ship.\n",
    ),
]
FOLDOC = [
    (
        "Huffman coding",
        "Huffman coding\n\n   <algorithm> A data compression technique which varies the length.\n",
    ),
    ("alt", "alt\n\n   <character> The alt key on many keyboards.\n"),  # not a topic: left out
    ("TCP", "TCP\n\n   <networking, protocol> The connection-oriented protocol of the Internet suite.\n"),
]


def _digits(number: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = alphabet[number % 64] + out
        number //= 64
        if number == 0:
            return out


def write_dictd(folder: Path, name: str, entries: list[tuple[str, str]], alias: str | None = None) -> None:
    """A database in dictd's format; `alias` is one more index line pointing at the first entry."""
    data = b""
    index = ["00-database-short\tA\tB"]
    for word, text in entries:
        raw = text.encode()
        index.append(f"{word}\t{_digits(len(data))}\t{_digits(len(raw))}")
        if alias is not None and not data:
            index.insert(1, f"{alias}\t{_digits(0)}\t{_digits(len(raw))}")
        data += raw
    (folder / f"{name}.index").write_text("\n".join(index) + "\n")
    with gzip.open(folder / f"{name}.dict.dz", "wb") as handle:
        handle.write(data)


def test_dictd_numbers() -> None:
    assert dictd_number("BNy") == 4978 and dictd_number("A") == 0 and _digits(4978) == "BNy"


def test_gcide_senses_by_subject_with_the_marker_and_markup_removed(tmp_path: Path) -> None:
    write_dictd(tmp_path, "gcide", GCIDE, alias="Ant bear")
    items = list(gcide_items(tmp_path))
    assert items == [
        ("Aardvark: An edentate mammal of the genus Orycteropus, which feeds on ants.", ["zoology"], "gcide"),
        (
            "Gripe: A device for grasping or holding anything; a brake to stop a wheel.",
            ["machinery"],
            "gcide",
        ),
        ("Gripe: The piece of timber at the forefoot of a ship.", ["sailing and ships"], "gcide"),
    ]  # the shared entry once, under its own headword; the sense without a subject left out


def test_gcide_nouns_by_headword_first_sense_only(tmp_path: Path) -> None:
    entries = [
        *GCIDE,
        ("Abide", "Abide \\A*bide\\, v. i.\n   To wait; to pause; to delay; to stay.\n   [1913 Webster]\n"),
        (
            "Acre",
            'Acre \\A"cre\\, n.\n   See {Acre foot}, under {Foot}, for the measure.\n   [1913 Webster]\n',
        ),
        ("Alms", "Alms \\Alms\\, n.\n   Anything given as alms to relieve the poor.\n   [1913 Webster]\n"),
        (
            "Anarchy",
            'Anarchy \\An"arch*y\\, n. [Gr.]\n   1. Absence of government; a state of lawlessness;\n'
            "      political confusion.\n      [1913 Webster]\n\n"
            "   2. Hence, confusion in general. --Milton.\n",
        ),
    ]
    write_dictd(tmp_path, "gcide", entries, alias="Ant bear")
    assert list(gcide_noun_definitions(tmp_path)) == [
        ("aardvark", "An edentate mammal of the genus Orycteropus, which feeds on ants."),
        ("anarchy", "Absence of government; a state of lawlessness; political confusion."),
    ]  # Gripe's first sense is two words, Abide a verb, Acre a cross reference, Alms names itself


def test_foldoc_first_filed_sense_by_category(tmp_path: Path) -> None:
    write_dictd(tmp_path, "foldoc", FOLDOC)
    assert list(foldoc_items(tmp_path)) == [
        ("Huffman coding: A data compression technique which varies the length.", ["algorithm"], "foldoc"),
        (
            "TCP: The connection-oriented protocol of the Internet suite.",
            ["computer networking", "network protocol"],
            "foldoc",
        ),
    ]


def test_build_records_takes_the_dictionaries_when_asked(tmp_path: Path, monkeypatch) -> None:
    write_dictd(tmp_path, "gcide", GCIDE)
    write_dictd(tmp_path, "foldoc", FOLDOC)
    from everylabel.data_recipes import dictionaries

    monkeypatch.setattr(dictionaries, "DICTD", tmp_path)
    monkeypatch.setattr(corpus, "gcide_items", lambda: gcide_items(tmp_path))
    monkeypatch.setattr(corpus, "foldoc_items", lambda: foldoc_items(tmp_path))
    for name in ("wordnet_items", "wordnet_domain_items", "debian_items", "fortune_items"):
        monkeypatch.setattr(corpus, name, lambda: iter([]))
    assert corpus.build_records() == []
    records = corpus.build_records(dictionaries=True)
    assert {r["source"] for r in records} == {"gcide", "foldoc"} and len(records) == 5
    for record in records:
        assert set(record["true_labels"]) <= set(record["all_labels"])
