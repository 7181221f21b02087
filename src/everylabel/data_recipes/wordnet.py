"""Reading WordNet's data files (Debian's `wordnet-base`): one synset per line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# A synset's identity: (part of speech, byte offset). Offsets are unique only within one part of
# speech's data file; the same number names unrelated synsets in data.noun and data.verb.
SynsetKey = tuple[str, str]


def part_of_speech(tag: str) -> str:
    """n, v, a, r; satellite adjectives ("s") live in data.adj and are keyed as "a"."""
    return "a" if tag == "s" else tag


@dataclass(frozen=True)
class Synset:
    offset: str
    pos: str  # n, v, a (satellites included) or r
    lex_file: int  # index into the lexicographer files (noun.animal, verb.motion, ...)
    lemmas: list[str]  # as written: underscores, adjective markers such as "good(a)"
    # (symbol, target key): "@" hypernym, "&" similar, "!" antonym, ";c" topic domain, ...
    pointers: list[tuple[str, SynsetKey]]
    gloss: str  # the definition, then any quoted usage examples

    @property
    def key(self) -> SynsetKey:
        return (self.pos, self.offset)


def read_synsets(path: Path) -> Iterator[Synset]:
    """Every synset of one `data.<part>` file, in file order (the licence header is skipped)."""
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue
        head, gloss = line.split("|", 1)
        fields = head.split()
        count = int(fields[3], 16)
        start = 4 + 2 * count
        pointers = [
            (
                fields[start + 1 + 4 * i],
                (part_of_speech(fields[start + 3 + 4 * i]), fields[start + 2 + 4 * i]),
            )
            for i in range(int(fields[start]))
        ]
        lemmas = [fields[4 + 2 * i] for i in range(count)]
        yield Synset(fields[0], part_of_speech(fields[2]), int(fields[1]), lemmas, pointers, gloss.strip())


def usage_examples(gloss: str) -> list[str]:
    """A gloss's quoted usage examples, as written: 'a bunt; "he laid down a squeeze"' -> the quote."""
    return re.findall(r'"([^"]+)"', gloss)
