"""Training records from offline sources: WordNet glosses, Debian package descriptions, fortunes.

The sources come from Debian's packages (`wordnet-base`, `fortunes`, `fortunes-min`, and the
package lists of `apt-get update`); none of them is an evaluation set. Every record is in the
official format with readable label names, sampled negatives, single- and multi-label:

- WordNet: a synset's gloss -> its lexicographer category ("animal", "food", "motion", ...) and
  the first lemma of its hypernym ("canine", "dish", ...): thousands of distinct label names;
  and the glosses WordNet files under a topic domain -> that topic ("law", "baseball", ...).
- Debian: a package description -> its section ("games", "python", ...) and selected debtags
  ("editing", "text", "strategy", ...), several true labels per record.
- fortunes: a quote -> its category file ("computers", "food", "law", "sports", ...).
- on request, longer texts made of several entries of one or two topics (`topic_documents`),
  self-generated polarity records (`opinions.py`), and dictionary definitions labelled by subject
  (`dictionaries.py`: `dict-gcide`, `dict-foldoc`), and records asking about everyday topic
  names over these texts (`everyday.py`).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .dictionaries import foldoc_items, gcide_items
from .everyday import everyday_records
from .opinions import opinion_records
from .wordnet import SynsetKey, read_synsets, usage_examples

WORDNET = Path("/usr/share/wordnet")
FORTUNES = Path("/usr/share/games/fortunes")

LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
]  # fmt: skip
CATEGORY_NAMES = {
    "noun.act": "action", "noun.animal": "animal", "noun.artifact": "man-made object",
    "noun.attribute": "attribute", "noun.body": "body part", "noun.cognition": "knowledge",
    "noun.communication": "communication", "noun.event": "event", "noun.feeling": "feeling",
    "noun.food": "food", "noun.group": "group", "noun.location": "place", "noun.motive": "motive",
    "noun.object": "natural object", "noun.person": "person", "noun.phenomenon": "natural phenomenon",
    "noun.plant": "plant", "noun.possession": "possession", "noun.process": "process",
    "noun.quantity": "quantity", "noun.relation": "relation", "noun.shape": "shape", "noun.state": "state",
    "noun.substance": "substance", "noun.time": "time", "verb.body": "grooming and body care",
    "verb.change": "change", "verb.cognition": "thinking", "verb.communication": "talking",
    "verb.competition": "competition", "verb.consumption": "eating and drinking", "verb.contact": "touching",
    "verb.creation": "making things", "verb.emotion": "emotion", "verb.motion": "movement",
    "verb.perception": "perception", "verb.possession": "buying and owning", "verb.social": "social life",
    "verb.stative": "being", "verb.weather": "weather",
}  # fmt: skip
SECTION_NAMES = {
    "admin": "system administration", "cli-mono": "mono", "comm": "communication", "database": "database",
    "debug": "debugging", "devel": "software development", "doc": "documentation", "editors": "text editor",
    "electronics": "electronics", "embedded": "embedded systems", "fonts": "fonts", "games": "games",
    "gnome": "gnome desktop", "gnu-r": "r language", "gnustep": "gnustep", "golang": "go language",
    "graphics": "graphics", "hamradio": "amateur radio", "haskell": "haskell", "httpd": "web server",
    "interpreters": "interpreter", "java": "java", "javascript": "javascript", "kde": "kde desktop",
    "kernel": "linux kernel", "libdevel": "development library", "libs": "library", "lisp": "lisp",
    "localization": "localization", "mail": "email", "math": "mathematics", "net": "networking",
    "news": "news", "ocaml": "ocaml", "perl": "perl", "php": "php", "python": "python", "ruby": "ruby",
    "rust": "rust language", "science": "science", "shells": "shell", "sound": "sound and audio",
    "tex": "tex typesetting", "text": "text processing", "utils": "utilities", "vcs": "version control",
    "video": "video", "web": "web", "x11": "x window system", "xfce": "xfce desktop",
}  # fmt: skip
# Debtags facets whose values read as topics.
TAG_FACETS = {
    "use", "works-with", "field", "game", "network", "hardware", "science", "sound", "web", "mail",
    "security", "accessibility", "biology", "made-of", "admin",
}  # fmt: skip
# Fortune files whose name is not a topic (collections, authors, formats).
FORTUNE_SKIP = {
    "ascii-art", "cookie", "disclaimer", "goedel", "knghtbrd", "paradoxum", "translate-me", "zippy",
    "fortunes",
    "miscellaneous", "debian", "perl", "startrek", "pratchett", "humorists", "linuxcookie",
}  # fmt: skip


def _readable(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("_", " ").replace("-", " ")).strip().lower()


def wordnet_items() -> Iterator[tuple[str, list[str], str]]:
    """(gloss, [category, hypernym], source) for every WordNet synset with a named category."""
    for part in ("noun", "verb"):
        synsets = list(read_synsets(WORDNET / f"data.{part}"))
        first_lemma = {s.key: _readable(re.sub(r"\(.*\)$", "", s.lemmas[0])) for s in synsets}
        for synset in synsets:
            category = CATEGORY_NAMES.get(LEXNAMES[synset.lex_file])
            if category is None or len(synset.gloss) < 12:
                continue
            labels = [category]
            hypernyms = [target for symbol, target in synset.pointers if symbol in ("@", "@i")]
            if hypernyms and hypernyms[0] in first_lemma and first_lemma[hypernyms[0]] != category:
                labels.append(first_lemma[hypernyms[0]])
            yield f"{_readable(synset.lemmas[0])}: {synset.gloss}", labels, "wordnet"


def wordnet_domain_items() -> Iterator[tuple[str, list[str], str]]:
    """(gloss, [topic], source) for synsets WordNet files under a topic domain (";c" pointers).

    "touchdown: a score in American football ..." -> "american football"; about 6,600 glosses
    over about 400 topics (law, music, computer science, baseball, medicine, ...).
    """
    first_lemma: dict[SynsetKey, str] = {}  # keyed by (part of speech, offset): offsets repeat across files
    tagged = []
    for part in ("noun", "verb", "adj", "adv"):
        for synset in read_synsets(WORDNET / f"data.{part}"):
            word = _readable(re.sub(r"\(.*\)$", "", synset.lemmas[0]))
            first_lemma[synset.key] = word
            for symbol, target in synset.pointers:
                if symbol == ";c":  # the gloss's "(music)" would give it away
                    definition = re.sub(r"^\([^)]*\)\s*", "", synset.gloss)
                    tagged.append((f"{word}: {definition}", target))
    for text, domain in tagged:
        if domain in first_lemma and len(text) >= 12:
            yield text, [first_lemma[domain]], "wordnet-domains"


USAGE_WORDS = (4, 30)  # a usage example as a text of its own: a short plain sentence


def wordnet_usage_items() -> Iterator[tuple[str, list[str], str]]:
    """(usage example, labels, source): each quoted example of a gloss above, alone, with its
    synset's labels ("dredge the chicken in flour before frying it" -> "cooking").

    The glosses read "word: definition; \"example\""; the examples alone are the short, plainly worded
    texts a user classifies, which the sources otherwise hardly have. A sentence quoted by several
    glosses (or by one synset's category gloss and its topic-domain gloss) is one item with all
    their labels, topic domains first.
    """
    labels_of: dict[str, list[str]] = {}
    for make in (wordnet_domain_items, wordnet_items):
        for text, labels, _ in make():
            for example in map(str.strip, usage_examples(text)):
                if USAGE_WORDS[0] <= len(example.split()) <= USAGE_WORDS[1]:
                    known = labels_of.setdefault(example, [])
                    known.extend(label for label in labels if label not in known)
    for example, labels in labels_of.items():
        yield example, labels, "wordnet-usage"


def debian_items() -> Iterator[tuple[str, list[str], str]]:
    """(description, [section, tags...], source) from the package lists (`apt-get update` first)."""
    dump = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    for block in dump.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith(" ") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        section = fields.get("Section", "").split("/")[-1]
        description = fields.get("Description", "")
        if section not in SECTION_NAMES or len(description) < 12:
            continue
        labels = [SECTION_NAMES[section]]
        for tag in fields.get("Tag", "").replace(",", " ").split():
            facet, _, value = tag.partition("::")
            if facet in TAG_FACETS and value and "{" not in value and value not in ("TODO", "*"):
                name = _readable(value.split(":")[-1])
                if name not in labels:
                    labels.append(name)
        yield f"{fields.get('Package', '')}: {description}", labels, "debian"


def fortune_items() -> Iterator[tuple[str, list[str], str]]:
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or path.name in FORTUNE_SKIP or not path.is_file():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            text = re.sub(r"\s+", " ", entry).strip()
            if 20 <= len(text) <= 600:
                yield text, [_readable(path.name)], "fortunes"


def topic_documents(
    items: list[tuple[str, list[str], str]], count: int, rng: random.Random
) -> list[tuple[str, list[str], str]]:
    """`count` longer texts, each 3-8 items that share their first label (their topic).

    One in five mixes two topics and carries both labels: long, multi-topic texts like a forum
    post, which the single entries of the sources are not.
    """
    by_topic: dict[str, list[str]] = {}
    for text, labels, _ in items:
        by_topic.setdefault(labels[0], []).append(text)
    topics = sorted(topic for topic, texts in by_topic.items() if len(texts) >= 8)
    if len(topics) < 2:
        return []
    source = items[0][2] + "-documents"
    documents = []
    for _ in range(count):
        chosen = rng.sample(topics, k=2 if rng.random() < 0.2 else 1)
        parts = [
            text
            for topic in chosen
            for text in rng.sample(by_topic[topic], k=max(2, rng.randint(3, 8) // len(chosen)))
        ]
        rng.shuffle(parts)
        documents.append((" ".join(parts), chosen, source))
    return documents


def build_records(
    limit_per_source: int | None = None,
    negatives: tuple[int, int] = (3, 12),
    seed: int = 0,
    documents_per_source: int = 0,
    opinions: int = 0,
    dictionaries: bool = False,
    everyday: int = 0,
) -> list[dict[str, Any]]:
    """Official-format records from every available source, with sampled negatives per record.

    `documents_per_source` adds that many longer texts per source (`topic_documents`); `opinions`
    adds that many self-generated polarity records (`opinions.opinion_records`, glosses on top);
    `dictionaries` adds the subject-labelled definitions of GCIDE and FOLDOC (`dictionaries.py`);
    `everyday` appends that many records asking about everyday topic names (`everyday.py`) after the
    shuffled rest, from their own random stream, so the other records and the held-out ones stay
    the same as without them.
    """
    rng = random.Random(seed)
    sources = []
    makers = [wordnet_items, wordnet_domain_items, debian_items, fortune_items]
    makers += [gcide_items, foldoc_items] if dictionaries else []
    for make in makers:
        try:
            items = list(make())
        except (OSError, subprocess.CalledProcessError):
            continue  # a source that is not installed is left out
        rng.shuffle(items)
        documents = topic_documents(items, documents_per_source, rng) if documents_per_source else []
        sources.append((items[:limit_per_source] if limit_per_source else items) + documents)
    records = []
    for items in sources:
        pool_by_position = sorted({label for _, labels, _ in items for label in labels})
        for text, labels, source in items:
            count = rng.randint(*negatives)
            candidates = [x for x in rng.sample(pool_by_position, k=min(len(pool_by_position), count + 4))
                          if x not in labels][:count]  # fmt: skip
            all_labels = labels + candidates
            rng.shuffle(all_labels)
            records.append({"text": text, "all_labels": all_labels, "true_labels": labels, "source": source})
    if opinions:
        with contextlib.suppress(OSError):  # wordnet-base is not installed
            records.extend(opinion_records(opinions, seed=seed))
    rng.shuffle(records)
    if everyday:
        all_items = [item for items in sources for item in items]
        records.extend(everyday_records(all_items, everyday, random.Random(f"everyday-{seed}")))
    return records


def write_records(records: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
