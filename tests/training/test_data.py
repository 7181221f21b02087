"""Training data: the official JSON/JSONL formats, and errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from everylabel.training.data import DataError, load_descriptions, load_records

GOOD = {"text": "a match", "all_labels": ["sports", "food"], "true_labels": ["sports"]}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_and_json_list_load_the_same(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "true_labels": {"sports": 0.7}, "prompt": "Topic?"}]
    from_jsonl, _ = load_records(write_jsonl(tmp_path / "a.jsonl", rows))
    (tmp_path / "b.json").write_text(json.dumps(rows, indent=2))
    from_json, _ = load_records(tmp_path / "b.json")
    assert from_jsonl == from_json
    assert from_jsonl[0].true_labels == {"sports": 1.0}
    assert from_jsonl[1].true_labels == {"sports": 0.7} and from_jsonl[1].prompt == "Topic?"


BAD = [
    ({"all_labels": ["a"], "true_labels": ["a"]}, "text: expected a non-empty string"),
    ({**GOOD, "all_labels": []}, "all_labels: expected a non-empty list"),
    ({**GOOD, "all_labels": ["a", 3]}, "all_labels[1]: expected a non-empty string"),
    ({**GOOD, "all_labels": ["a", "a"], "true_labels": ["a"]}, "all_labels: duplicate label 'a'"),
    ({**GOOD, "true_labels": ["golf"]}, "true_labels: 'golf' is not in all_labels"),
    ({**GOOD, "true_labels": {"sports": 2}}, "true_labels['sports']: expected a score in [0, 1]"),
    ({**GOOD, "true_labels": "sports"}, "true_labels: expected a list"),
    (
        {**GOOD, "examples": [{"text": "x", "labels": "sports"}]},
        "examples[0].labels: expected a list of strings",
    ),
    ({**GOOD, "prompt": 5}, "prompt: expected a string"),
]


@pytest.mark.parametrize(("record", "message"), BAD, ids=[b[1].split(":")[0] for b in BAD])
def test_bad_record_names_file_line_and_field(tmp_path: Path, record: dict, message: str) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [GOOD, GOOD, record])
    with pytest.raises(DataError) as error:
        load_records(path)
    assert str(error.value) == f"{path}:3: {message}" or str(error.value).startswith(f"{path}:3: {message}")


def test_line_numbers_in_a_json_list(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text("[\n" + json.dumps(GOOD) + ",\n\n" + json.dumps({**GOOD, "text": ""}) + "\n]\n")
    with pytest.raises(DataError, match=rf"^{path}:4: text: expected a non-empty string$"):
        load_records(path)


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(DataError, match=rf"^{path}:2: record: not valid JSON"):
        load_records(path)


def test_skip_invalid_keeps_the_good_records_and_reports_the_bad(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [GOOD, {**GOOD, "text": ""}, GOOD, {"text": "x"}])
    records, problems = load_records(path, skip_invalid=True)
    assert len(records) == 2
    assert [p.split(": ")[0] for p in problems] == [f"{path}:2", f"{path}:4"]


def test_descriptions_file(tmp_path: Path) -> None:
    path = tmp_path / "desc.json"
    path.write_text(json.dumps({"sports": "games", "food": ["things to eat", "meals"]}))
    assert load_descriptions(path) == {"sports": ["games"], "food": ["things to eat", "meals"]}
    path.write_text(json.dumps({"sports": 3}))
    with pytest.raises(DataError, match="'sports': expected a description"):
        load_descriptions(path)
