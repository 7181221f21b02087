"""Training items from dictionaries in Debian's dictd format: definitions labelled by subject.

- `dict-gcide` (Webster's 1913 and later supplements): a sense marked with a subject field,
  "(Zool.) An edentate mammal ..." -> "zoology"; about 40 readable subjects (zoology, botany,
  chemistry, medicine, anatomy, sailing, music, architecture, military, mathematics, ...).
- `dict-foldoc` (the Free On-line Dictionary of Computing): an entry's first sense, filed under a
  category, "<networking> A protocol for ..." -> "computer networking"; about 30 computing topics.
- `dict-gcide` nouns by headword: a noun's first sense -> the word it defines ("An edentate mammal
  ... which feeds on ants." -> "aardvark"), the task of picking a word by its meaning.

The marker is removed from the text, so it never gives the label away. A dictd database is an
index (headword, offset, length, the numbers in dictd's base 64) and a gzip-compressed text file
(`.dict.dz`); none of it is an evaluation set.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

DICTD = Path("/usr/share/dictd")
_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# GCIDE subject fields (as the entries abbreviate them) -> readable labels.
GCIDE_SUBJECTS = {
    "Zool.": "zoology", "Bot.": "botany", "Chem.": "chemistry", "Med.": "medicine", "Anat.": "anatomy",
    "Naut.": "sailing and ships", "Min.": "minerals", "Biol.": "biology", "Mus.": "music",
    "Arch.": "architecture", "Mil.": "military", "Physiol.": "physiology", "Math.": "mathematics",
    "Astron.": "astronomy", "Geol.": "geology", "Mach.": "machinery", "Geom.": "geometry",
    "Her.": "heraldry", "Elec.": "electricity", "Gram.": "grammar", "Eccl.": "church",
    "Mech.": "mechanics", "Paleon.": "paleontology", "Surg.": "surgery", "Print.": "printing",
    "Ethnol.": "ethnology", "Fort.": "fortification", "Com.": "commerce", "Rhet.": "rhetoric",
    "Theol.": "theology", "Metal.": "metallurgy", "Opt.": "optics", "Far.": "horse care",
    "Crystallog.": "crystals", "Carp.": "carpentry", "Photog.": "photography", "Paint.": "painting",
    "Pros.": "poetry", "Alg.": "algebra", "Engin.": "engineering", "Gun.": "guns", "Agric.": "agriculture",
    "Phon.": "phonetics", "Astrol.": "astrology", "Hort.": "gardening", "Geog.": "geography",
    "Meteor.": "weather", "Arith.": "arithmetic", "Philos.": "philosophy", "Myth.": "mythology",
    "Pharm.": "pharmacy", "Surv.": "surveying", "Biochem.": "biochemistry",
}  # fmt: skip
# FOLDOC categories -> readable labels (categories that are not topics, such as "character",
# "person" or "spelling", are left out).
FOLDOC_CATEGORIES = {
    "language": "programming language", "networking": "computer networking", "programming": "programming",
    "jargon": "hacker slang", "operating system": "operating system", "company": "technology company",
    "hardware": "computer hardware", "communications": "telecommunications", "mathematics": "mathematics",
    "storage": "data storage", "processor": "computer processor", "computer": "computer model",
    "database": "database", "tool": "software tool", "web": "world wide web",
    "messaging": "email and messaging", "architecture": "computer architecture",
    "theory": "computer science theory", "graphics": "computer graphics",
    "humour": "humour", "algorithm": "algorithm", "protocol": "network protocol", "logic": "logic",
    "security": "computer security", "standard": "technical standard", "games": "games",
    "electronics": "electronics", "application": "application software", "testing": "software testing",
    "software": "software",
}  # fmt: skip

_GCIDE_ENDS = r"\n\s*\n|\[\d{4}|\[Webster|\[WordNet"  # where a GCIDE sense ends: a blank line, a source note
_GCIDE_SENSE = re.compile(
    r"\((" + "|".join(re.escape(key) for key in GCIDE_SUBJECTS) + rf")\)\s+(.+?)(?={_GCIDE_ENDS}|\Z)",
    re.S,
)
_NOUN_LINE = re.compile(r"\\,\s*n\.")  # 'Aardvark \\Aard"vark\\, n. ...': the entry is a noun
_SENSE_END = re.compile(rf"{_GCIDE_ENDS}|\[PJC")
_WORD = re.compile(r"[a-z][a-z '\-]{2,40}")
_FOLDOC_SENSE = re.compile(r"^\s+(?:\d+\.\s+)?<([a-z ,/-]+)>\s+(.+?)(?=\n\s*\n|\Z)", re.S | re.M)


def dictd_number(text: str) -> int:
    """A number written in dictd's base 64: "BNy" -> 4978."""
    value = 0
    for char in text:
        value = value * 64 + _DIGITS.index(char)
    return value


def dictd_entries(name: str, folder: Path = DICTD) -> Iterator[tuple[str, str]]:
    """(headword, entry text) of every entry of the dictd database `name` (its index order)."""
    with gzip.open(folder / f"{name}.dict.dz") as handle:
        data = handle.read()
    seen: set[tuple[int, int]] = set()
    for line in (folder / f"{name}.index").read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database"):
            continue
        where = (dictd_number(parts[1]), dictd_number(parts[2]))
        if where in seen:  # several headwords can share one entry
            continue
        seen.add(where)
        start, length = where
        yield parts[0], data[start : start + length].decode("utf-8", errors="replace")


def clean(text: str) -> str:
    """Dictionary markup out: {cross references} kept as words, \\pronunciations\\ and [notes] dropped."""
    text = re.sub(r"\\[^\\\n]*\\", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = text.replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", text).strip()


def headword(entry: str, fallback: str) -> str:
    """The word an entry defines, from its own first line ("Aardvark \\aard"vark\\, n." ->
    "Aardvark"): an index line can point several headwords at one shared entry."""
    first = entry.strip().splitlines()[0] if entry.strip() else ""
    word = re.split(r"\\|,|\s\(|\s\[", first, maxsplit=1)[0].strip()
    return word if 0 < len(word) <= 60 else fallback


def gcide_items(folder: Path = DICTD) -> Iterator[tuple[str, list[str], str]]:
    """("headword: definition", [subject], source) for every GCIDE sense with a subject field."""
    for indexed, entry in dictd_entries("gcide", folder):
        word = headword(entry, indexed)
        for field, definition in _GCIDE_SENSE.findall(entry):
            text = clean(definition)
            if len(text.split()) >= 5:
                yield f"{word}: {text}", [GCIDE_SUBJECTS[field]], "gcide"


def gcide_noun_definitions(folder: Path = DICTD) -> Iterator[tuple[str, str]]:
    """(headword, first sense) of every GCIDE noun whose first sense reads as a definition: 4 to 60
    words, not a cross reference ("See ..."), not naming the word itself; the headword lowercased.
    A headword is given once (its first entry)."""
    seen: set[str] = set()
    for indexed, entry in dictd_entries("gcide", folder):
        lines = entry.strip().splitlines()
        if not lines or not _NOUN_LINE.search(lines[0]):
            continue
        word = headword(entry, indexed).lower()
        sense = _SENSE_END.split(entry.split("\\,", 1)[-1])[0].strip()
        sense = re.sub(r"^n\.\s*(pl\.[^.]*\.)?", "", sense).strip()  # the part of speech, a plural
        sense = re.sub(r"^\[[^\]]*\]", "", sense).strip()  # the etymology
        sense = re.sub(r"^\([^)]*\)", "", sense).strip()  # a subject field
        sense = re.sub(r"^(1\.|\(a\))\s*", "", sense)  # the first of numbered senses
        text = re.sub(r"\s--[A-Z][^;]*$", "", clean(sense)).strip()  # a quoted author at the end
        size = len(text.split())
        if word in seen or not _WORD.fullmatch(word) or not 4 <= size <= 60:
            continue
        if text.startswith("See ") or ", n." in text or word in text.lower():
            continue
        seen.add(word)
        yield word, text


def foldoc_items(folder: Path = DICTD) -> Iterator[tuple[str, list[str], str]]:
    """("headword: definition", [category, ...], source) for each FOLDOC entry's first filed sense."""
    for indexed, entry in dictd_entries("foldoc", folder):
        match = _FOLDOC_SENSE.search(entry)
        if match is None:
            continue
        labels = [
            FOLDOC_CATEGORIES[c.strip()] for c in match.group(1).split(",") if c.strip() in FOLDOC_CATEGORIES
        ]
        text = clean(match.group(2))
        if labels and len(text.split()) >= 5:
            yield f"{headword(entry, indexed)}: {text}", labels, "foldoc"
