"""The `everylabel classify` command: inputs, outputs, and one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from everylabel import create_model
from everylabel.cli import main
from tests import oracle


@pytest.fixture(scope="module")
def model_dir(backbone_dir, tmp_path_factory) -> str:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    folder = tmp_path_factory.mktemp("cli-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_texts_as_arguments_write_jsonl(capsys, model_dir: str) -> None:
    code, out, _ = run(
        capsys, "classify", "a match", "a vote", "--labels", "sports, politics", "--model", model_dir
    )
    assert code == 0
    rows = jsonl(out)
    assert [r["index"] for r in rows] == [0, 1]
    for row in rows:
        assert set(row["scores"]) == {"sports", "politics"}
        above = [label for label, score in row["scores"].items() if score >= 0.5]
        assert row["labels"] == sorted(above, key=lambda label: -row["scores"][label])


def test_txt_input_and_output_file_in_input_order(capsys, model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    lines = ["first text", "", "a much longer third text " * 5, "fourth"]
    source.write_text("\n".join(lines) + "\n")
    target = tmp_path / "out.jsonl"
    code, out, _ = run(capsys, "classify", "--input", str(source), "--labels", "a,b,c", "--model", model_dir,
                       "--output", str(target), "--single-label")  # fmt: skip
    assert code == 0 and out == ""
    rows = jsonl(target.read_text())
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert rows[1]["empty"] is True and rows[1]["labels"] == []
    assert all(len(r["labels"]) == 1 for i, r in enumerate(rows) if i != 1)


def test_jsonl_input_with_per_row_labels(capsys, model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"text": "row one", "labels": ["x", "y"]}) + "\n" + json.dumps({"text": "row two"}) + "\n"
    )
    code, out, _ = run(capsys, "classify", "--input", str(source), "--labels", "p,q,r", "--model", model_dir)
    assert code == 0
    rows = jsonl(out)
    assert set(rows[0]["scores"]) == {"x", "y"} and set(rows[1]["scores"]) == {"p", "q", "r"}


def test_csv_input_with_text_column(capsys, model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('id,body\n1,"first, with a comma"\n2,second\n')
    code, out, _ = run(capsys, "classify", "--input", str(source), "--text-column", "body", "--labels", "a,b",
                       "--model", model_dir)  # fmt: skip
    assert code == 0 and len(jsonl(out)) == 2


def test_stdin_and_labels_file_hierarchy(capsys, model_dir: str, tmp_path: Path, monkeypatch) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"topic": ["sports", "politics"], "tone": ["calm"]}))
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\ntwo\n"))
    code, out, _ = run(capsys, "classify", "--labels-file", str(labels), "--model", model_dir)
    assert code == 0
    rows = jsonl(out)
    assert len(rows) == 2
    assert set(rows[0]["scores"]) == {"topic.sports", "topic.politics", "tone.calm"}
    assert set(rows[0]["nested"]) == {"topic", "tone"}


def test_table_format_for_people(capsys, model_dir: str) -> None:
    args = ["The match ended", "--labels", "sports,politics", "--format", "table", "--threshold", "0.0"]
    code, out, _ = run(capsys, "classify", *args, "--model", model_dir)
    assert code == 0
    assert out.splitlines()[0] == "[0] The match ended"
    assert sum(line.strip().startswith("*") for line in out.splitlines()) == 2


def test_truncation_is_reported_on_stderr(capsys, model_dir: str) -> None:
    long_text = "word " * 2000
    code, out, err = run(capsys, "classify", long_text, "--labels", "a,b", "--model", model_dir)
    assert code == 0 and "1 of 1 texts were cut" in err
    assert jsonl(out)[0]["truncated"] is True
    code, _, err = run(
        capsys, "classify", long_text, "--labels", "a,b", "--model", model_dir, "--truncation", "error"
    )
    assert code == 2 and err.startswith("everylabel: error: texts[0]:") and err.count("\n") == 1


BAD: list[tuple[str, list[str], str]] = [
    ("duplicate-label", ["x", "--labels", "a,a"], "labels[1]: duplicate label 'a'"),
    ("no-labels", ["x"], "no labels"),
    (
        "missing-input",
        ["--input", "/nonexistent/in.txt", "--labels", "a"],
        "--input: /nonexistent/in.txt does not",
    ),
    ("both-sources", ["x", "--input", "f.txt", "--labels", "a"], "give texts as arguments or with --input"),
    (
        "both-label-options",
        ["x", "--labels", "a", "--labels-file", "l.txt"],
        "give --labels or --labels-file",
    ),
    (
        "bad-threshold",
        ["x", "--labels", "a", "--threshold", "2"],
        "threshold: threshold must be a number in [0, 1]",
    ),
    ("bad-device", ["x", "--labels", "a", "--device", "tpu"], "device: 'tpu' is not a device"),
]


@pytest.mark.parametrize(("args", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_exits_non_zero_with_one_line(
    capsys, model_dir: str, args: list[str], message: str
) -> None:
    code, out, err = run(capsys, "classify", *args, "--model", model_dir)
    assert code == 2 and out == ""
    assert err.startswith("everylabel: error: " + message) and err.count("\n") == 1


def test_bad_jsonl_line_names_file_and_line(capsys, model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    code, _, err = run(capsys, "classify", "--input", str(source), "--labels", "a", "--model", model_dir)
    assert code == 2 and err == f"everylabel: error: {source}:2: field 'text' missing or not a string\n"
    source.write_text('{"text": "ok"}\n{broken\n')
    code, _, err = run(capsys, "classify", "--input", str(source), "--labels", "a", "--model", model_dir)
    assert code == 2 and err.startswith(f"everylabel: error: {source}:2: not valid JSON")


def test_missing_csv_column_is_named(capsys, model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,body\n1,x\n")
    code, _, err = run(capsys, "classify", "--input", str(source), "--labels", "a", "--model", model_dir)
    assert code == 2 and "no column 'text' (columns: id, body)" in err


def test_help_is_fast_and_imports_no_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from everylabel.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "heavy = ('torch', 'transformers', 'fastapi', 'uvicorn', 'ray', 'pyarrow', 'onnxruntime')\n"
        "print(sorted(name for name in heavy if name in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run(
        [sys.executable, "-m", "everylabel", "classify", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--input", "--labels-file", "--single-label", "--truncation", "--output", "--format"):
        assert option in help_text


def test_an_internal_error_exits_1_and_points_to_debug(capsys, model_dir: str, monkeypatch) -> None:
    from everylabel.inference.torch_backend import TorchBackend

    def broken(self, *args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(TorchBackend, "run", broken)
    code, out, err = run(capsys, "classify", "a text", "--labels", "a,b", "--model", model_dir)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("everylabel: internal error: RuntimeError: something inside broke")
    assert "--debug" in err
    with pytest.raises(RuntimeError, match="something inside broke"):
        main(["--debug", "classify", "a text", "--labels", "a,b", "--model", model_dir])


def test_a_crash_late_in_a_run_keeps_every_finished_line(
    capsys, model_dir: str, tmp_path: Path, monkeypatch
) -> None:
    from everylabel.inference.classifier import Classifier

    source = tmp_path / "in.txt"
    source.write_text("".join(f"text number {i}\n" for i in range(25)))
    target = tmp_path / "out.jsonl"
    real_score = Classifier.score
    calls = []

    def failing_score(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the device fell over")
        return real_score(self, *args, **kwargs)

    monkeypatch.setattr(Classifier, "score", failing_score)
    code, _, err = run(capsys, "classify", "--input", str(source), "--labels", "a,b", "--model", model_dir,
                       "--output", str(target), "--window", "10")  # fmt: skip
    assert code == 1 and "the device fell over" in err
    rows = jsonl(target.read_text())
    assert [r["index"] for r in rows] == list(range(20))  # the two finished windows, all of them


def test_results_are_written_before_the_input_ends(model_dir: str, tmp_path: Path) -> None:
    """A result line appears while later texts are still unread (a pipe that stays open)."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "everylabel",
            "classify",
            "--labels",
            "a,b",
            "--model",
            model_dir,
            "--window",
            "1",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("the first text\n")
    child.stdin.flush()
    first = json.loads(child.stdout.readline())  # before the second text is even written
    assert first["index"] == 0
    child.stdin.write("the second text\n")
    child.stdin.close()
    second = json.loads(child.stdout.readline())
    assert second["index"] == 1 and child.wait(timeout=60) == 0


@pytest.mark.parametrize("command", [["eval", "--model", "gliclass:x", "--dataset", "d.jsonl"],
                                     ["bench", "throughput", "--model", "x"]])  # fmt: skip
def test_a_missing_gliclass_package_is_named(capsys, monkeypatch, tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "t", "label": "a"}) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "gliclass", None)  # importing it raises ImportError
    if command[0] == "bench":
        from everylabel.inference.classifier import Classifier

        monkeypatch.setattr(Classifier, "from_pretrained", lambda *a, **k: None)
    code, _, err = run(capsys, *command)
    assert code == 2 and err.count("\n") == 1
    assert "`gliclass` package" in err and "pip install gliclass" in err


def test_an_interrupt_exits_130(capsys, model_dir: str, monkeypatch) -> None:
    from everylabel.inference.torch_backend import TorchBackend

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TorchBackend, "run", interrupted)
    code, _, err = run(capsys, "classify", "a text", "--labels", "a,b", "--model", model_dir)
    assert code == 130 and err == "everylabel: interrupted\n"


def test_loading_the_default_model_is_quiet() -> None:
    """No "Loading weights" progress bars for a one-second load (the library's `load_model` and
    embedding backbones keep them off) and no third-party notices."""
    done = subprocess.run(
        [sys.executable, "-m", "everylabel", "classify", "The striker scored.", "--labels", "sports,food",
         "--backend", "torch"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads(done.stdout)["labels"]


def test_a_labels_file_of_two_item_lists_is_refused_not_misread(
    capsys, model_dir: str, tmp_path: Path
) -> None:
    pairs = tmp_path / "labels.json"
    pairs.write_text(json.dumps([["sports", "ball games and athletes"], ["cooking", "recipes"]]))
    code, _, err = run(
        capsys, "classify", "a match", "a meal", "--labels-file", str(pairs), "--model", model_dir
    )
    assert code == 2 and "ambiguous" in err and '{"name"' in err
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps([{"name": "sports", "description": "ball games"}, {"name": "cooking"}]))
    code, out, err = run(capsys, "classify", "a match", "--labels-file", str(objects), "--model", model_dir)
    assert code == 0 and set(jsonl(out)[0]["scores"]) == {"sports", "cooking"}
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "a match", "labels": [["sports", "ball games"]]}) + "\n")
    code, _, err = run(capsys, "classify", "--input", str(rows), "--model", model_dir)
    assert code == 2 and '"description"' in err  # a row's own labels: a list is no label either


ID_INPUTS = [
    ("csv", 'key,text\nA7,"first, with a comma"\n\nA7,second\n', ["A7", "A7"]),
    ("tsv", "text\tkey\nfirst\t1\nsecond\t\n", ["1", ""]),
    ("jsonl", '{"text": "first", "key": "x"}\n\n{"text": "second", "key": 17}\n'
              '{"text": "third", "key": null}\n', ["x", "17", None]),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "content", "ids"), ID_INPUTS, ids=[i[0] for i in ID_INPUTS])
def test_id_column_is_written_after_the_index_on_every_line(
    capsys, model_dir: str, tmp_path: Path, kind: str, content: str, ids: list
) -> None:
    """Ids as `batch` keeps them: strings (numbers as their string, null as null), duplicates as given."""
    source = tmp_path / f"in.{kind}"
    source.write_text(content)
    code, out, err = run(capsys, "classify", "--input", str(source), "--id-column", "key", "--labels", "a,b",
                         "--model", model_dir, "--no-progress")  # fmt: skip
    assert code == 0 and err == ""
    rows = jsonl(out)
    assert [(r["index"], r["id"]) for r in rows] == list(enumerate(ids))
    assert all(list(r)[:3] == ["index", "id", "labels"] for r in rows)


def test_id_column_in_the_table_format(capsys, model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("key,text\nA7,first\nB2,second\n")
    code, out, _ = run(capsys, "classify", "--input", str(source), "--id-column", "key", "--labels", "a,b",
                       "--model", model_dir, "--format", "table")  # fmt: skip
    heads = [line for line in out.splitlines() if line.startswith("[")]
    assert code == 0 and heads == ['[0 id="A7"] first', '[1 id="B2"] second']


def test_id_column_errors_name_the_column_and_the_place(
    capsys, model_dir: str, tmp_path: Path, monkeypatch
) -> None:
    files = {
        "no-column.csv": "id,text\n1,x\n",
        "short-row.csv": "text,key\nx,1\ny\n",
        "no-field.jsonl": '{"text": "x", "key": "1"}\n{"text": "y"}\n',
        "bad-type.jsonl": '{"text": "x", "key": ["1"]}\n',
        "lines.txt": "x\ny\n",
    }
    expected = {
        "no-column.csv": "no-column.csv: no column 'key' (columns: id, text); check --id-column",
        "short-row.csv": "short-row.csv:3: no value for column 'key' (1 fields, the header has 2)",
        "no-field.jsonl": "no-field.jsonl:2: no field 'key' (fields: text); check --id-column",
        "bad-type.jsonl": "bad-type.jsonl:1: field 'key' is list; ids are strings or numbers",
        "lines.txt": "lines.txt is read as one text a line, with no columns; give a .jsonl, .csv or .tsv",
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        code, _, err = run(capsys, "classify", "--input", str(tmp_path / name), "--id-column", "key",
                           "--labels", "a", "--model", model_dir, "--no-progress")  # fmt: skip
        assert code == 2 and err.count("\n") == 1 and expected[name] in err, (name, err)
    assert "everylabel: error: --id-column: " + str(tmp_path / "lines.txt") in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\ntwo\n"))
    code, out, err = run(capsys, "classify", "--id-column", "key", "--labels", "a", "--model", model_dir)
    assert code == 2 and out == ""
    assert err == "everylabel: error: --id-column: standard input (one text a line) has no columns; give a "\
        ".jsonl, .csv or .tsv file with --input\n"  # fmt: skip


def test_a_file_is_counted_so_its_progress_shows_a_total(
    capsys, model_dir: str, tmp_path: Path, monkeypatch
) -> None:
    source = tmp_path / "in.csv"
    source.write_text('text\n"a text\nover two lines"\n\nsecond\nthird\n')
    code, out, err = run(capsys, "classify", "--input", str(source), "--labels", "a,b", "--model", model_dir,
                         "--progress")  # fmt: skip
    assert code == 0 and [r["index"] for r in jsonl(out)] == [0, 1, 2]  # the bar stays off stdout
    assert "3/3" in err and "100%" in err and "<00:00" in err  # a total, then the time left
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\ntwo\n"))
    code, out, err = run(capsys, "classify", "--labels", "a,b", "--model", model_dir, "--progress")
    assert code == 0 and len(jsonl(out)) == 2
    assert "2input [" in err and "%" not in err  # a stream: no total, as before

    def no_count(path: Path) -> int:
        raise AssertionError("counted without a progress bar")

    monkeypatch.setattr("everylabel.cli.count_rows", no_count)
    code, out, err = run(capsys, "classify", "--input", str(source), "--labels", "a,b", "--model", model_dir,
                         "--no-progress")  # fmt: skip
    assert code == 0 and err == "" and len(jsonl(out)) == 3


def test_count_rows_counts_what_is_read(tmp_path: Path) -> None:
    from everylabel.cli_io import count_rows, read_input_file

    contents = {
        "a.csv": '\ufefftext,key\n"one, two\nthree",1\n\n"",2\nlast,3',
        "b.tsv": "text\n\nx\ny\n",
        "c.jsonl": '{"text": "x"}\n\n  \n{"text": "y"}',
        "d.txt": "\ufefffirst\n\nthird\n",
        "e.csv": "",
    }
    counts = {"a.csv": 3, "b.tsv": 2, "c.jsonl": 2, "d.txt": 3, "e.csv": 0}
    for name, content in contents.items():
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        read = list(read_input_file(path, "text")) if name != "e.csv" else []
        assert count_rows(path) == len(read) == counts[name], name
    assert next(read_input_file(tmp_path / "a.csv", "text", "key")) == ("one, two\nthree", None, "1")
    assert next(read_input_file(tmp_path / "d.txt", "text")).text == "first"  # no byte-order mark
