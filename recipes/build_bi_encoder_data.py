"""Training records for the default model v4, a one-pass bi-encoder distilled from the blended
model v3 (docs/benchmarks.md, "A one-pass bi-encoder distilled from the blended model").

    .venv/bin/python recipes/build_bi_encoder_data.py data/default-train.jsonl \
        --everyday data/everyday-train.jsonl --teacher runs/default-model-teacher \
        --out data/bi-encoder-train.jsonl

Its parts, shuffled together, labels as given (the model reads each in its `label_template`,
"This article is about {label}.", the sentence the blend's embedding reads labels in):
- teacher records: texts of the build's topical sources (cut to 90 words), each with its own labels
  and 6 to 14 topic names of the build (4 to 8 of them among the text's 40 nearest by the embedding,
  2 to 6 at random); the targets are the teacher's single-label scores (the blended model v3, its
  blend included). The single-label trainer takes each record's best candidate as its class.
- hard records: the build's `opinions` (sentiment, which the topic teacher does not know);
- everyday records: the last N of an `--everyday` build (everyday topic names over the sources' texts);
- definition records (`--definitions N`): a dict-gcide noun's first sense with its headword as the
  class among 6 to 14 headwords (4 to 8 of them among the 40 nearest the definition by the
  embedding, 2 to 6 at random), so the model keeps picking a word by its meaning, as the embedding
  did, among many candidates. No headword is a WordNet noun's name (those make the many-label
  benchmark's label set), so none of its labels or texts is trained on.
- usage records (`--usage N`): everyday topics asked about WordNet's usage examples alone
  ("dredge the chicken in flour before frying it" -> "food"), short plain sentences the other
  parts hardly have, as `build-data --everyday` asks them (a quarter one-label).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from build_distillation_data import SENTIMENT_SOURCES, WORDS, read, true_labels, vocabulary_of

from everylabel import Classifier
from everylabel.data_recipes.corpus import WORDNET, wordnet_usage_items, write_records
from everylabel.data_recipes.dictionaries import gcide_noun_definitions
from everylabel.data_recipes.distillation import cut_words
from everylabel.data_recipes.everyday import everyday_records
from everylabel.data_recipes.wordnet import read_synsets
from everylabel.inference.retrieval import EmbeddingRetriever

SENTENCE = "This article is about {label}."  # how the embedding ranks near candidates
NEAREST = 40  # near candidates are drawn from the text's nearest topic names by the embedding


def candidate_sets(
    records: list[dict], texts: list[str], vocabulary: list[str], rng: random.Random
) -> list[list[str]]:
    """Per text: its own labels (at most two), near topic names and random ones, shuffled."""
    nearest = EmbeddingRetriever(template=SENTENCE).rank(texts, [vocabulary] * len(texts))
    sets = []
    for record, cosines in zip(records, nearest, strict=True):
        near = [vocabulary[j] for j in np.argsort(-cosines)[:NEAREST]]
        picked = true_labels(record)[:2] + rng.sample(near, rng.randint(4, 8))
        picked += rng.sample(vocabulary, rng.randint(2, 6))
        labels = list(dict.fromkeys(picked))
        rng.shuffle(labels)
        sets.append(labels)
    return sets


def teacher_records(teacher_name: str, texts: list[str], sets: list[list[str]], started: float) -> list[dict]:
    """The teacher's single-label scores (its blend included) as each record's targets."""
    teacher = Classifier.from_pretrained(teacher_name, device="cpu")
    out: list[dict] = []
    for start in range(0, len(texts), 256):
        part, labels = texts[start : start + 256], sets[start : start + 256]
        for text, names, result in zip(
            part, labels, teacher.classify(part, labels, multi_label=False, progress=False), strict=True
        ):
            targets = {n: round(float(result.scores[n]), 5) for n in names}
            out.append({"text": text, "all_labels": names, "true_labels": targets, "source": "teacher"})
        print(f"teacher: {start + len(part)} texts, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def hard_records(records: list[dict], source: str) -> list[dict]:
    return [
        {
            "text": r["text"],
            "all_labels": r["all_labels"],
            "true_labels": true_labels(r),
            "source": source,
        }
        for r in records
    ]


def definition_records(count: int, rng: random.Random) -> list[dict]:
    """`count` definitions of dict-gcide nouns that no WordNet noun is named by, each with its
    headword among near and random other headwords (see the module's docstring)."""
    nouns = read_synsets(WORDNET / "data.noun")
    named = {lemma.replace("_", " ").lower() for synset in nouns for lemma in synset.lemmas}
    meaning = {word: text for word, text in gcide_noun_definitions() if word not in named}
    words = sorted(meaning)
    chosen = rng.sample(words, count)
    texts = [meaning[word] for word in chosen]
    nearest = EmbeddingRetriever().rank(texts, [words] * len(texts))
    out = []
    for word, text, cosines in zip(chosen, texts, nearest, strict=True):
        near = [words[j] for j in np.argsort(-cosines)[: NEAREST + 1] if words[j] != word][:NEAREST]
        labels = [word, *rng.sample(near, rng.randint(4, 8)), *rng.sample(words, rng.randint(2, 6))]
        labels = list(dict.fromkeys(labels))
        rng.shuffle(labels)
        out.append({"text": text, "all_labels": labels, "true_labels": [word], "source": "definitions"})
    return out


def usage_records(count: int, rng: random.Random) -> list[dict]:
    """`count` everyday-topic records over WordNet's usage examples (see the module's docstring)."""
    records = everyday_records(list(wordnet_usage_items()), count, rng)
    for record in records:
        record["source"] = "usage"
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="records from everylabel build-data")
    parser.add_argument(
        "--everyday", type=Path, help="a build with --everyday 20000 (its last 20,000 records are those)"
    )
    parser.add_argument(
        "--teacher",
        required=True,
        help="the blended model v3 (make default-model: runs/default-model-teacher)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--texts", type=int, default=12000, help="teacher records")
    parser.add_argument("--opinions", type=int, default=3000)
    parser.add_argument("--everyday-records", type=int, default=4000)
    parser.add_argument("--definitions", type=int, default=0, help="dict-gcide definition records")
    parser.add_argument("--usage", type=int, default=0, help="records over WordNet's usage examples")
    parser.add_argument("--min-count", type=int, default=20, help="topic names: labels of at least N records")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rng = random.Random(args.seed)
    records = read(args.train)
    vocabulary = vocabulary_of(records, args.min_count)
    topical = [r for r in records if r.get("source") not in SENTIMENT_SOURCES]
    opinions = [r for r in records if r.get("source") in SENTIMENT_SOURCES]
    rng.shuffle(topical)
    rng.shuffle(opinions)
    chosen = topical[: args.texts]
    texts = [cut_words(r["text"], WORDS) for r in chosen]
    out = teacher_records(args.teacher, texts, candidate_sets(chosen, texts, vocabulary, rng), started)
    out += hard_records(opinions[: args.opinions], "opinions")
    if args.everyday is not None:
        everyday = read(args.everyday)[-20000:]
        rng.shuffle(everyday)
        out += hard_records(everyday[: args.everyday_records], "everyday")
    rng.shuffle(out)
    if args.definitions:  # their own seeded draws, so the records above stay as they were without them
        out += definition_records(args.definitions, random.Random(args.seed))
        random.Random(args.seed + 1).shuffle(out)
    if args.usage:  # the same, so a build without them is a build with them less these records
        out += usage_records(args.usage, random.Random(args.seed + 2))
        random.Random(args.seed + 3).shuffle(out)
    write_records(out, args.out)
    seconds = round(time.perf_counter() - started)
    print(json.dumps({"vocabulary": len(vocabulary), "records": len(out), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
