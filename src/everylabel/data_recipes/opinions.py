"""Self-generated opinion records: evaluative polarity grown from WordNet adjectives.

A few dozen clearly positive and negative adjectives, each in its most frequent sense, seed a step
over WordNet's adjective links: "similar to" keeps the polarity, "antonym" flips it; a synset
reached with both polarities is dropped. From the polar synsets come three kinds of text, all made here:
- the gloss with its head word ("superb: of surpassingly high quality");
- WordNet's own usage examples of those synsets ("the food was excellent");
- short opinions from frames, generic subjects and the adjectives ("The service was superb."),
  where a negated positive frame ("The service was not superb.") is labelled negative.
Neutral texts (WordNet noun glosses) are mixed in under a "neutral" label. The label names are the
pairs a user would write for polarity, drawn from several wordings so that no one name is learnt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .wordnet import read_synsets, usage_examples

WORDNET = Path("/usr/share/wordnet")

POSITIVE_SEEDS = (
    "good", "excellent", "superb", "wonderful", "great", "fine", "nice", "pleasant", "delightful",
    "enjoyable", "admirable", "beautiful", "brilliant", "outstanding", "impressive", "superior",
    "favorable", "fortunate", "happy", "satisfactory", "charming", "elegant", "fascinating",
    "marvelous", "splendid", "terrific", "lovely", "perfect", "remarkable", "worthy", "exciting",
    "entertaining", "interesting", "rewarding", "valuable", "effective",
)  # fmt: skip
NEGATIVE_SEEDS = (
    "bad", "poor", "terrible", "awful", "horrible", "dreadful", "unpleasant", "nasty", "inferior",
    "unfavorable", "unfortunate", "unhappy", "unsatisfactory", "boring", "dull", "tedious",
    "tiresome", "disappointing", "mediocre", "ugly", "stupid", "annoying", "irritating",
    "worthless", "useless", "pathetic", "miserable", "dismal", "lousy", "shoddy", "clumsy",
    "offensive", "disgusting", "painful",
)  # fmt: skip

LABEL_PAIRS = (
    ("positive", "negative"),
    ("positive sentiment", "negative sentiment"),
    ("positive opinion", "negative opinion"),
    ("good", "bad"),
    ("favorable", "unfavorable"),
    ("praise", "criticism"),
    ("approval", "disapproval"),
    ("liked it", "disliked it"),
    ("satisfied", "dissatisfied"),
)

SUBJECTS = (
    "the service", "the food", "this product", "the book", "the hotel", "the staff", "the movie",
    "the show", "the performance", "the meal", "this phone", "the app", "the new update",
    "the course", "the teacher", "the lecture", "the game", "the album", "the song", "the concert",
    "the room", "the trip", "the design", "the camera", "the car", "the repair", "the store",
    "the delivery", "the restaurant", "the article", "the software", "the interface", "the story",
    "the ending", "the acting", "the price", "the quality", "the coffee", "the museum", "the tour",
    "the manual", "the speech", "the match", "his latest novel", "their new record", "the sequel",
    "the support team", "the neighbourhood", "the flight", "the painting",
)  # fmt: skip
FRAMES = (
    "{S} was {A}.",
    "{S} is {A}.",
    "I found {s} {A}.",
    "Honestly, {s} was {A}.",
    "{S} turned out to be {A}.",
    "All in all, {s} was {A} and {B}.",
    "We thought {s} was {A}.",
    "{S}? {A}, really {B}.",
    "My verdict: {s} is {A}.",
    "Everyone agreed that {s} was {A}.",
)
NEGATED_FRAMES = (
    "{S} was not {A} at all.",
    "{S} is far from {A}.",
    "I would not call {s} {A}.",
    "{S} was never {A}.",
)


def _lemma(word: str) -> str:
    return re.sub(r"\(.*\)$", "", word).replace("_", " ").lower()


def _adjective_synsets() -> dict[str, tuple[list[str], str, list[tuple[str, str]]]]:
    """offset -> (lemmas, gloss, [(pointer symbol, target offset)]) for every adjective synset.

    Only pointers to adjectives are kept: the offsets here are those of data.adj, and an offset of
    another part of speech names a different synset.
    """
    return {
        s.offset: (
            [_lemma(w) for w in s.lemmas],
            s.gloss,
            [(symbol, offset) for symbol, (pos, offset) in s.pointers if pos == "a"],
        )
        for s in read_synsets(WORDNET / "data.adj")
    }


def _first_senses(words: set[str]) -> dict[str, str]:
    """word -> offset of its most frequent adjective sense (WordNet's index lists senses by use)."""
    senses = {}
    for line in (WORDNET / "index.adj").read_text(encoding="latin-1").splitlines():
        fields = line.split()
        if line.startswith("  ") or not fields or fields[0] not in words:
            continue
        synset_count = int(fields[2])
        senses[fields[0]] = fields[-synset_count]
    return senses


def polar_synsets(
    synsets: dict[str, tuple[list[str], str, list[tuple[str, str]]]] | None = None,
) -> dict[str, int]:
    """offset -> +1 or -1 for adjective synsets of clear polarity (see the module docstring).

    The most frequent sense of each seed word, its "similar to" neighbours (same polarity) and its
    antonyms (opposite); a synset reached with both polarities is dropped. `synsets`: those of
    `_adjective_synsets`, when the caller has read them already.
    """
    synsets = synsets if synsets is not None else _adjective_synsets()
    seeds = {w: 1 for w in POSITIVE_SEEDS} | {w: -1 for w in NEGATIVE_SEEDS}
    votes: dict[str, set[int]] = {}
    for word, offset in _first_senses(set(seeds)).items():
        sign = seeds[word]
        votes.setdefault(offset, set()).add(sign)
        for symbol, target in synsets[offset][2]:
            if target in synsets and symbol in ("&", "!"):
                votes.setdefault(target, set()).add(sign if symbol == "&" else -sign)
    return {offset: next(iter(signs)) for offset, signs in votes.items() if len(signs) == 1}


def _split_gloss(gloss: str) -> tuple[str, list[str]]:
    """WordNet's definition and its quoted usage examples."""
    examples = [example for example in usage_examples(gloss) if len(example) >= 12]
    definition = gloss.split('; "', 1)[0].strip().rstrip(";")
    return definition, examples


def opinion_items(count: int, seed: int = 0) -> Iterator[tuple[str, int]]:
    """(text, polarity +1 / -1) pairs: glosses, WordNet examples, then `count` framed opinions."""
    rng = random.Random(seed)
    synsets = _adjective_synsets()
    polar = polar_synsets(synsets)
    words: dict[int, list[str]] = {1: [], -1: []}
    for offset, sign in sorted(polar.items()):
        lemmas, gloss, _ = synsets[offset]
        definition, examples = _split_gloss(gloss)
        if len(definition) >= 12:
            yield f"{lemmas[0]}: {definition}", sign
        for example in examples:
            yield example, sign
        words[sign].extend(lemma for lemma in lemmas if " " not in lemma)
    both = set(words[1]) & set(words[-1])  # "pretty" is praise in one sense, irony in another
    words = {sign: sorted(set(pool) - both) for sign, pool in words.items()}
    for _ in range(count):
        sign = rng.choice((1, -1))
        negated = sign == -1 and rng.random() < 0.25
        frame = rng.choice(NEGATED_FRAMES if negated else FRAMES)
        pool = words[1] if negated else words[sign]
        subject = rng.choice(SUBJECTS)
        text = frame.format(
            S=subject[0].upper() + subject[1:], s=subject, A=rng.choice(pool), B=rng.choice(pool)
        )
        yield text[0].upper() + text[1:], sign


def neutral_texts(limit: int, seed: int = 0) -> list[str]:
    """Plain definitions of nouns: text that states facts and takes no side."""
    rng = random.Random(seed)
    synsets = list(read_synsets(WORDNET / "data.noun"))
    picked = rng.sample(synsets, k=min(limit, len(synsets)))
    return [_split_gloss(synset.gloss)[0] for synset in picked]


def opinion_records(count: int = 20000, neutral_share: float = 0.15, seed: int = 0) -> list[dict[str, Any]]:
    """Official-format records of polarity, each with one wording of the label pair (+ neutral)."""
    rng = random.Random(seed)
    records = []
    for text, sign in opinion_items(count, seed):
        positive, negative = rng.choice(LABEL_PAIRS)
        labels = [positive, negative] + (["neutral"] if rng.random() < 0.3 else [])
        rng.shuffle(labels)
        true = positive if sign == 1 else negative
        records.append({"text": text, "all_labels": labels, "true_labels": [true], "source": "opinions"})
    for text in neutral_texts(int(len(records) * neutral_share), seed):
        positive, negative = rng.choice(LABEL_PAIRS)
        labels = [positive, negative, "neutral"]
        rng.shuffle(labels)
        records.append({"text": text, "all_labels": labels, "true_labels": ["neutral"], "source": "opinions"})
    rng.shuffle(records)
    return records
