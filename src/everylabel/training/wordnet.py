"""Reading WordNet's data files (Debian's `wordnet-base`): one synset per line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Synset:
    offset: str
    lex_file: int  # index into the lexicographer files (noun.animal, verb.motion, ...)
    lemmas: list[str]  # as written: underscores, adjective markers such as "good(a)"
    pointers: list[tuple[str, str]]  # (symbol, target offset): "@" hypernym, "&" similar, "!" antonym, ...
    gloss: str  # the definition, then any quoted usage examples


def read_synsets(path: Path) -> Iterator[Synset]:
    """Every synset of one `data.<part>` file, in file order (the licence header is skipped)."""
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue
        head, gloss = line.split("|", 1)
        fields = head.split()
        count = int(fields[3], 16)
        start = 4 + 2 * count
        pointers = [(fields[start + 1 + 4 * i], fields[start + 2 + 4 * i]) for i in range(int(fields[start]))]
        lemmas = [fields[4 + 2 * i] for i in range(count)]
        yield Synset(fields[0], int(fields[1]), lemmas, pointers, gloss.strip())
