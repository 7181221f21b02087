"""Dataset loaders on local fixtures in the shape of the real sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from everylabel.evaluation.datasets import (
    PAPER_DATASETS,
    from_hub_rows,
    load_local,
    load_named,
    read_orange_tab,
)


def test_local_jsonl_single_and_multi_label(tmp_path: Path) -> None:
    single = tmp_path / "single.jsonl"
    single.write_text(
        "\n".join(json.dumps(r) for r in [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    )
    data = load_local(single)
    assert data.texts == ["a", "b"] and data.gold == [["x"], ["y"]] and data.labels == ["x", "y"]
    assert not data.multi_label
    multi = tmp_path / "multi.jsonl"
    multi.write_text(
        json.dumps({"text": "a", "true_labels": ["x", "z"], "all_labels": ["x", "y", "z"]}) + "\n"
    )
    data = load_local(multi)
    assert data.multi_label and data.labels == ["x", "z", "y"]


def test_local_json_list_pretty_printed(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": "x"}, {"text": "b", "labels": ["y", "x"]}]
    path = tmp_path / "set.json"
    path.write_text(json.dumps(rows, indent=2))  # one list over many lines
    data = load_named(str(path))
    assert data.texts == ["a", "b"] and data.gold == [["x"], ["y", "x"]] and data.multi_label
    path.write_text(json.dumps(rows, indent=2).replace('"b"', "b", 1))
    with pytest.raises(ValueError, match=r"set.json:\d+: record: not valid JSON"):
        load_named(str(path))


def test_local_csv_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "set.csv"
    path.write_text('text,label\n"first, text",sports\nsecond,politics\n')
    data = load_local(path)
    assert data.texts == ["first, text", "second"] and data.labels == ["sports", "politics"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"body": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: needs a 'text' field"):
        load_local(bad)


def test_limit_is_a_seeded_sample(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps({"text": str(i), "label": "ab"[i // 50]}) for i in range(100)))
    a, b = load_named(str(path), limit=10), load_named(str(path), limit=10)
    assert a.texts == b.texts and len(a.texts) == 10
    assert {g[0] for g in a.gold} == {"a", "b"}  # not just the first rows of a sorted file


def test_orange_tab_format(tmp_path: Path) -> None:
    path = tmp_path / "20newsgroups-test.tab"
    path.write_text("Category\tText\nd\tstring\nclass\t\nsci.space\tthe shuttle flew\nrec.autos\tmy car\n")
    assert read_orange_tab(path) == (["the shuttle flew", "my car"], ["sci.space", "rec.autos"])


HUB_FIXTURES = [
    ("sst5", {"text": ["bad", "great"], "label": [0, 4]}, None, [["very negative"], ["very positive"]]),
    ("imdb", {"text": ["x", "y"], "label": [1, 0]}, ["neg", "pos"], [["positive"], ["negative"]]),
    ("massive", {"utt": ["wake me up"], "intent": ["alarm_set"]}, None, [["alarm set"]]),
    ("banking77", {"text": ["card?"], "label": [1]}, ["activate_my_card", "age_limit"], [["age limit"]]),
    (
        "financial_phrasebank",
        {"sentence": ["up"], "label": [2]},
        ["negative", "neutral", "positive"],
        [["positive"]],
    ),
    (
        "cap_sotu",
        {"text": ["taxes"], "labels": [0]},
        ["Macroeconomics", "Civil Rights"],
        [["Macroeconomics"]],
    ),
    ("cr", {"text": ["nice"], "label_text": ["positive"]}, None, [["positive"]]),
]


@pytest.mark.parametrize(("key", "columns", "names", "gold"), HUB_FIXTURES, ids=[f[0] for f in HUB_FIXTURES])
def test_paper_dataset_conventions(key: str, columns: dict, names: list | None, gold: list) -> None:
    data = from_hub_rows(key, columns, names)
    assert data.gold == gold
    assert len(data.texts) == len(gold)
    assert all(g[0] in data.labels for g in data.gold)


def test_every_paper_dataset_names_its_columns() -> None:
    assert len(PAPER_DATASETS) == 14
    assert PAPER_DATASETS["massive"]["config"] == "en-US" and PAPER_DATASETS["massive"]["text"] == "utt"
    assert PAPER_DATASETS["financial_phrasebank"]["split"] == "train"
    assert PAPER_DATASETS["cap_sotu"]["label"] == "labels"


def test_unknown_dataset_is_named() -> None:
    with pytest.raises(ValueError, match="dataset: 'nope' is neither a file"):
        load_named("nope")
