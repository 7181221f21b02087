"""Everyday topic names over the sources' own texts: "technology", "health", "money", ...

The sources label their texts with narrow names ("computer science", "pathology", "stock
exchange", a Debian section), and almost never with the broad words a user asks with: in the
default build "technology" is a true label 7 times in 300,000 records and "health" never. These
records reuse the texts whose source label (or source) maps to an everyday topic, ask about those
topics, and a quarter of them are one-label calls (one candidate, true or not), the call a user
makes with `labels=["sports"]`.

The map is written by hand from the sources' label lists, not from any evaluation set. Some names
("politics", "religion") are also label names of 20 Newsgroups, as they already were labels of the
sources; the texts are the sources' own.
"""

from __future__ import annotations

import random
from typing import Any

# Everyday topic -> the source labels that are a kind of it (WordNet topic domains and categories,
# fortune files, Debian sections).
TOPIC_LABELS: dict[str, tuple[str, ...]] = {
    "sports": (
        "sport", "sports", "baseball", "golf", "football", "american football", "basketball", "boxing",
        "tennis", "cricket", "ice hockey", "soccer", "fencing", "badminton", "rugby", "softball", "squash",
        "water sport", "field hockey", "bowling", "gymnastics", "wrestling", "horse racing", "auto racing",
        "skiing", "professional basketball", "lacrosse", "polo", "mountain climbing", "table tennis",
        "court game", "croquet",
    ),
    "technology": (
        "computer science", "computer", "computers", "linux", "electronics", "telecommunication",
        "programming", "telephone", "computer graphics", "information science", "electrical engineering",
    ),
    "health": (
        "medicine", "pathology", "psychiatry", "surgery", "dentistry", "pharmacology", "obstetrics",
        "immunology", "neurology", "ophthalmology", "radiology", "epidemiology", "pregnancy", "orthopedics",
        "endocrinology", "otology", "psychotherapy", "virology",
    ),
    "money": (
        "commerce", "economics", "commercial enterprise", "tax", "stock exchange", "accounting", "finance",
        "auction", "corporation", "banking", "investing", "investment", "corporate finance", "business",
        "bookkeeping", "trade", "accountancy",
    ),
    "travel": (
        "air travel", "seafaring", "navigation", "driving", "aircraft", "airplane", "car", "ship", "boat",
        "train", "transportation", "water travel", "bus", "sailing", "sailing vessel",
    ),
    "weather": (
        "meteorology", "weather", "atmospheric phenomenon", "storm", "windstorm", "wind", "precipitation",
        "rain", "snow",
    ),
    "food": ("cooking", "food", "brewing", "winemaking", "meat", "dish", "beverage", "foodstuff"),
    "music": ("music", "jazz", "singing", "a cappella singing", "rock 'n' roll", "music genre", "concert"),
    "politics": (
        "politics", "government", "election", "legislation", "legislature", "parliament", "diplomacy",
        "foreign service",
    ),
    "law": (
        "law", "criminal law", "contract", "civil law", "roman law", "case law", "contract law",
        "matrimonial law", "maritime law", "corporation law", "canon law", "military law", "tort",
    ),
    "religion": (
        "religion", "christianity", "judaism", "islam", "hinduism", "buddhism", "roman catholic", "theology",
        "christian theology", "church service", "old testament", "new testament", "bible", "sikhism",
        "anglican church", "taoism", "orthodox church", "protestant church", "episcopal church", "jainism",
    ),
    "science": (
        "science", "chemistry", "physics", "biology", "botany", "genetics", "geology", "astronomy", "zoology",
        "biochemistry", "ecology", "cosmology", "optics", "microbiology", "particle physics",
    ),
    "military": ("military", "war", "navy"),
    "art": ("art", "fine arts", "photography", "handicraft", "ceramics", "architecture"),
    "education": ("education", "university", "academia"),
    "entertainment": ("movie", "film", "television", "performing arts", "drama", "dramaturgy", "games"),
    "literature": ("literature", "poetry", "prosody", "writing"),
}  # fmt: skip
# Sources whose every text is about one everyday topic.
SOURCE_TOPICS = {"debian": "technology"}
ONE_LABEL_SHARE = 0.25  # records that ask about one topic alone
NEGATIVES = (1, 8)  # other everyday topics among a record's candidates (more-candidate records)


# Source label -> the everyday topics it is a kind of (the map above, inverted once).
TOPICS_OF_LABEL: dict[str, set[str]] = {}
for _topic, _kinds in TOPIC_LABELS.items():
    for _kind in _kinds:
        TOPICS_OF_LABEL.setdefault(_kind, set()).add(_topic)


def topics_of(labels: list[str], source: str) -> list[str]:
    """The everyday topics a text with these source labels (from this source) is about, in the
    order of `TOPIC_LABELS`, then the source's own."""
    found = {topic for label in labels for topic in TOPICS_OF_LABEL.get(label, ())}
    topics = [topic for topic in TOPIC_LABELS if topic in found]
    extra = SOURCE_TOPICS.get(source.removesuffix("-documents"))
    return [*topics, extra] if extra and extra not in topics else topics


def everyday_records(
    items: list[tuple[str, list[str], str]], count: int, rng: random.Random
) -> list[dict[str, Any]]:
    """`count` official-format records over the items that map to an everyday topic.

    Topics are drawn evenly (Debian alone would make most of them "technology"), then a text of
    that topic. One-label records ask about one of its topics or one it is not about, at even odds.
    """
    by_topic: dict[str, list[tuple[str, list[str]]]] = {}
    for text, labels, source in items:
        topics = topics_of(labels, source)
        for topic in topics:
            by_topic.setdefault(topic, []).append((text, topics))
    if len(by_topic) < 2:
        return []
    names = sorted(by_topic)
    everyday = sorted(TOPIC_LABELS)
    records = []
    for _ in range(count):
        text, topics = rng.choice(by_topic[rng.choice(names)])
        others = [topic for topic in everyday if topic not in topics]
        if rng.random() < ONE_LABEL_SHARE:
            asked = [rng.choice(topics)] if rng.random() < 0.5 else [rng.choice(others)]
            true = [topic for topic in asked if topic in topics]
        else:
            asked = topics + rng.sample(others, k=min(len(others), rng.randint(*NEGATIVES)))
            rng.shuffle(asked)
            true = list(topics)
        records.append({"text": text, "all_labels": asked, "true_labels": true, "source": "everyday"})
    return records
