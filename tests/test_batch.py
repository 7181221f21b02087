"""`everylabel batch`: every input format, one-line errors, resume, and exactly once under SIGKILL."""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from everylabel import Classifier, create_model  # noqa: E402
from everylabel.batch import add_batch_parser, batch_command  # noqa: E402
from everylabel.batch.parts import MANIFEST  # noqa: E402
from everylabel.cli_io import CliError  # noqa: E402
from everylabel.errors import InputError, MissingDependencyError  # noqa: E402
from everylabel.inference.calibration import Calibration  # noqa: E402
from everylabel.integrations.ray import ClassifyBatch  # noqa: E402
from tests import oracle  # noqa: E402

LABELS = ["sports", "politics", "science"]
TEXTS = [
    "the match went to extra time",
    "",
    "parliament votes on the budget today",
    "a new telescope sees distant galaxies " * 3,
    "quarks and leptons",
    None,
    "the striker scored twice, and the crowd sang",
    "elections are held every four years",
    "x",
    "a long text about the weather, the sea and the mountains " * 4,
    "the senate passed the bill",
    "cells divide by mitosis",
    "tennis",
    'two lines,\r\nwith a comma and "quotes"',
    "débat à l'assemblée",
]
IDS = [f"row-{i}" for i in range(len(TEXTS))]


def save_tiny_model(backbone_dir, tmp_path_factory) -> str:
    """A tiny uni-encoder saved as a checkpoint folder (as tests/test_cli.py builds it)."""
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)
    folder = tmp_path_factory.mktemp("batch-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def model_dir(backbone_dir, tmp_path_factory) -> str:
    return save_tiny_model(backbone_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def expected(model_dir: str) -> list[dict[str, Any]]:
    classifier = Classifier.from_pretrained(model_dir, backend="torch")
    return [r.to_dict() for r in classifier.classify([t or "" for t in TEXTS], LABELS, progress=False)]


def batch(*args: str) -> dict[str, Any]:
    """Run `everylabel batch` in this process; its JSON summary."""
    parser = argparse.ArgumentParser()
    add_batch_parser(parser.add_subparsers(dest="command"))
    parsed = parser.parse_args(["batch", *args])
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        assert batch_command(parsed) == 0
    return json.loads(out.getvalue())


def run_args(source: Path, output: Path, model_dir: str, *extra: str) -> list[str]:
    return ["--input", str(source), "--output", str(output), "--labels", ",".join(LABELS),
            "--model", model_dir, "--backend", "torch", *extra]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    path.write_text("".join([*lines[:5], "\n", *lines[5:]]), encoding="utf-8")  # a blank line is no row


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:  # with a byte-order mark
        writer = csv.DictWriter(handle, fieldnames=["id", "body"])
        writer.writeheader()
        writer.writerows({"id": row["id"], "body": row["body"] or ""} for row in rows)


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    pq.write_table(
        pa.table({"id": [r["id"] for r in rows], "body": [r["body"] for r in rows]}), path, row_group_size=4
    )


def rows_of(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"id": IDS[i], "body": TEXTS[i]} for i in range(start, stop)]


def make_input(kind: str, folder: Path) -> Path:
    """The test rows as one file of `kind`, or spread over a folder of all three kinds."""
    folder.mkdir()
    if kind == "folder":
        write_jsonl(folder / "a.jsonl", rows_of(0, 4))
        (folder / "b").mkdir()
        write_csv(folder / "b" / "c.csv", rows_of(4, 9))
        write_parquet(folder / "d.parquet", rows_of(9, len(TEXTS)))
        (folder / "_SUCCESS").write_text("")
        return folder
    path = folder / f"in.{kind}"
    {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}[kind](path, rows_of(0, len(TEXTS)))
    return path


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet", "folder"])
def test_every_input_gives_the_results_of_classify(
    kind: str, model_dir: str, expected: list[dict[str, Any]], tmp_path: Path
) -> None:
    source = make_input(kind, tmp_path / "in")
    output = tmp_path / "out"
    summary = batch(*run_args(source, output, model_dir, "--text-column", "body", "--id-column", "id",
                              "--part-rows", "5"))  # fmt: skip
    assert summary["rows"] == summary["rows_written"] == len(TEXTS)
    assert summary["parts"] == summary["parts_written"] == 3 and summary["parts_skipped"] == 0
    assert sorted(p.name for p in output.glob("*.parquet")) == [f"part-0000{k}.parquet" for k in range(3)]
    table = pq.read_table(output)
    assert table.column("index").to_pylist() == list(range(len(TEXTS)))
    assert table.column("id").to_pylist() == IDS
    for row, want in zip(table.to_pylist(), expected, strict=True):
        scores = dict(row["scores"])
        assert list(scores) == list(want["scores"])
        assert all(abs(scores[k] - want["scores"][k]) <= 1e-6 for k in scores)
        assert row["labels"] == want["labels"] and row["text_tokens"] == want["text_tokens"]
        assert row["empty"] == want.get("empty", False)
        assert row["truncated"] == want["truncated"] and row["cut_tokens"] == want["cut_tokens"]
    manifest = json.loads((output / MANIFEST).read_text())
    assert manifest["complete"] and manifest["rows"] == len(TEXTS)
    assert [(p["name"], p["first"], p["rows"]) for p in manifest["parts"]] == [
        ("part-00000.parquet", 0, 5), ("part-00001.parquet", 5, 5), ("part-00002.parquet", 10, 5)
    ]  # fmt: skip


def test_output_reads_as_one_dataset_with_pandas(model_dir: str, tmp_path: Path) -> None:
    import pandas as pd

    source = make_input("jsonl", tmp_path / "in")
    hierarchy = tmp_path / "labels.json"
    hierarchy.write_text(json.dumps({"sport": ["tennis", "football"], "politics": ["elections"]}))
    batch("--input", str(source), "--output", str(tmp_path / "out"), "--labels-file", str(hierarchy),
          "--model", model_dir, "--backend", "torch", "--text-column", "body", "--keep-text",
          "--single-label")  # fmt: skip
    frame = pd.read_parquet(tmp_path / "out")
    assert len(frame) == len(TEXTS) and "id" not in frame.columns
    assert frame["text"].tolist() == [t or "" for t in TEXTS]
    first = dict(frame["scores"][0])
    assert set(first) == {"sport.tennis", "sport.football", "politics.elections"}
    assert set(json.loads(frame["nested"][0])) == {"sport", "politics"}
    assert frame["labels"].map(len).tolist() == [0 if not t else 2 for t in TEXTS]  # one per group


def test_resume_after_completion_writes_nothing(model_dir: str, tmp_path: Path) -> None:
    source = make_input("jsonl", tmp_path / "in")
    args = run_args(source, tmp_path / "out", model_dir, "--text-column", "body", "--part-rows", "4")
    batch(*args)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*")}
    summary = batch(*args, "--resume")
    assert summary["parts_written"] == 0 and summary["parts_skipped"] == 4 and summary["rows_written"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*")} == before


def test_resume_writes_only_the_missing_parts(model_dir: str, tmp_path: Path) -> None:
    source = make_input("csv", tmp_path / "in")
    output = tmp_path / "out"
    args = run_args(source, output, model_dir, "--text-column", "body", "--part-rows", "4")
    batch(*args)
    whole = pq.read_table(output)
    (output / "part-00002.parquet").unlink()
    (output / ".part-00003.parquet.tmp").write_bytes(b"half a part")  # left by a killed run
    summary = batch(*args, "--resume")
    assert summary["parts_written"] == 1 and summary["rows_written"] == 4
    assert not list(output.glob(".*.tmp"))
    assert pq.read_table(output).equals(whole)


def expect_error(args: list[str], *fragments: str) -> None:
    with pytest.raises(CliError) as caught:
        batch(*args)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_inputs_name_the_file_and_row(model_dir: str, tmp_path: Path) -> None:
    def case(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    out = tmp_path / "never"
    missing = case("missing.jsonl", '{"text": "fine"}\n{"body": "no text"}\n')
    expect_error(run_args(missing, out, model_dir), "missing.jsonl:2", "'text'")
    broken = case("broken.jsonl", '{"text": "fine"}\n\n{"text": oops}\n')
    expect_error(run_args(broken, out, model_dir), "broken.jsonl:3", "not valid JSON")
    no_column = case("no_column.csv", "id,body\n1,hello\n")
    expect_error(run_args(no_column, out, model_dir), "no_column.csv", "no column 'text'", "id, body")
    short = case("short.csv", "id,text\n1,hello\n2\n")
    expect_error(run_args(short, out, model_dir), "short.csv:3")
    table = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), table)
    expect_error(run_args(table, out, model_dir), "numbers.parquet", "'text'", "int64")
    expect_error(run_args(case("notes.txt", "a\n"), out, model_dir), "notes.txt", "unsupported file type")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.jsonl").write_text('{"text": "x"}\n')
    (mixed / "b.json").write_text("[]")
    expect_error(run_args(mixed, out, model_dir), "b.json", "unsupported file type")
    expect_error(run_args(tmp_path / "nowhere.jsonl", out, model_dir), "does not exist")
    expect_error(run_args(missing, out, model_dir, "--workers", "2"), "--workers", "--engine ray")
    assert not out.exists()


def test_an_existing_output_needs_resume_with_the_same_settings(model_dir: str, tmp_path: Path) -> None:
    source = make_input("jsonl", tmp_path / "in")
    output = tmp_path / "out"
    args = run_args(source, output, model_dir, "--text-column", "body")
    batch(*args)
    expect_error(args, str(output), "use --resume or another --output")
    other = [a if a != ",".join(LABELS) else "sports,politics" for a in args]
    expect_error([*other, "--resume"], "--resume", "labels was")
    source.with_name("in.jsonl").write_text('{"body": "changed"}\n')
    expect_error([*args, "--resume"], "input files changed: in.jsonl")


def test_classify_batch_takes_every_ray_batch_format(model_dir: str, expected: list[dict[str, Any]]) -> None:
    import numpy as np
    import pandas as pd

    classify = ClassifyBatch(model=model_dir, labels=LABELS, backend="torch")
    texts = [t or "" for t in TEXTS]
    table = classify(pa.table({"text": texts, "n": list(range(len(texts)))}))
    frame = classify(pd.DataFrame({"text": TEXTS}))
    arrays = classify({"text": np.array(texts, dtype=object)})
    assert table.column("n").to_pylist() == list(range(len(texts)))
    for i, want in enumerate(expected):
        assert dict(table.column("scores")[i].as_py()) == frame["scores"][i] == arrays["scores"][i]
        assert frame["scores"][i] == pytest.approx(want["scores"], abs=1e-6)
    assert arrays["text_tokens"].dtype == np.int64 and arrays["empty"].dtype == np.bool_
    with pytest.raises(InputError, match="'labels' would be overwritten"):
        classify(pa.table({"text": ["a"], "labels": ["gold"]}))
    with pytest.raises(InputError, match="no column 'body'"):
        ClassifyBatch(model=model_dir, labels=LABELS, backend="torch", text_column="body")(
            pa.table({"x": ["a"]})
        )


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from everylabel.extras import require

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'everylabel\[ray\]'"):
        require("ray", "ray", "--engine ray")


def test_the_command_imports_light() -> None:
    code = (
        "import sys, everylabel.batch, everylabel.batch.command, everylabel.integrations.ray; "
        "print(*(m in sys.modules for m in ('torch', 'pyarrow', 'ray')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def cli_prefix() -> list[str]:
    return [sys.executable, "-m", "everylabel"]


def test_a_killed_run_resumes_to_every_row_exactly_once(model_dir: str, tmp_path: Path) -> None:
    count, part_rows = 600, 10
    source = tmp_path / "in.jsonl"
    write_jsonl(
        source, [{"text": f"text {i} " + "about the game and the vote " * (i % 5)} for i in range(count)]
    )
    output = tmp_path / "out"
    args = run_args(
        source, output, model_dir, "--part-rows", str(part_rows), "--batch-size", "1", "--threads", "1"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [*cli_prefix(), "batch", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list(output.glob("part-*.parquet")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    written = list(output.glob("part-*.parquet"))
    assert 1 <= len(written) < count // part_rows
    assert not json.loads((output / MANIFEST).read_text())["complete"]

    summary = batch(*args, "--resume")
    assert summary["parts_skipped"] >= len(written)
    assert summary["parts_written"] + summary["parts_skipped"] == count // part_rows
    resumed = pq.read_table(output)
    index = resumed.column("index").to_pylist()
    assert sorted(index) == list(range(count)) and len(set(index)) == count
    assert json.loads((output / MANIFEST).read_text())["complete"]
    batch(*[a if a != str(output) else str(tmp_path / "whole") for a in args])
    assert resumed.equals(pq.read_table(tmp_path / "whole"))


def test_a_resume_on_changed_weights_calibration_or_runtime_is_refused(
    model_dir: str, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    source = make_input("jsonl", tmp_path / "in")
    output = tmp_path / "out"
    args = run_args(source, output, str(model), "--text-column", "body", "--part-rows", "5")
    summary = batch(*args)
    assert summary["runtime"] == {"backend": "torch", "device": "cpu", "dtype": "fp32"}
    manifest = json.loads((output / MANIFEST).read_text())
    assert manifest["fingerprint"]["version"] and manifest["runtime"]["dtype"] == "fp32"
    (output / "part-00002.parquet").unlink()  # a run to resume
    Calibration("temperature", "multi-label", 2.0).save(model)  # the same path, other answers
    expect_error([*args, "--resume"], "model_digest was")
    (model / "everylabel_calibration.json").unlink()
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the weights
    weights.write_bytes(bytes(data))
    expect_error([*args, "--resume"], "model_digest was")
    shutil.copy(Path(model_dir) / "model.safetensors", weights)
    expect_error([*args, "--resume", "--dtype", "bf16"], "dtype was")
    assert batch(*args, "--resume")["parts_written"] == 1  # the same model and runtime: resumed


def test_the_runtime_is_checked_part_by_part(tmp_path: Path) -> None:
    from everylabel.batch.parts import Output
    from everylabel.batch.sources import Part

    plan = [Part(0, 0, 1, ()), Part(1, 1, 1, ())]
    output = Output(tmp_path / "out", {"input": "x"}, plan, 2)
    output.open(resume=False)
    table = pa.table({"index": [0]})
    cpu = {"backend": "onnx", "device": "cpu", "dtype": "fp32"}
    output.write(plan[0], table, cpu)
    with pytest.raises(CliError, match='another runtime: backend was "onnx", now "torch"'):
        output.write(plan[1], pa.table({"index": [1]}), {**cpu, "backend": "torch", "dtype": "bf16"})
    output.close()


def test_a_lock_left_by_a_killed_run_is_reported_and_a_live_one_named(model_dir: str, tmp_path: Path) -> None:
    from everylabel.batch.parts import LOCK

    source = make_input("jsonl", tmp_path / "in")
    output = tmp_path / "out"
    args = run_args(source, output, model_dir, "--text-column", "body")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK.format(folder=str(output))], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    expect_error(args, f"another everylabel batch (pid {holder.pid} on")  # alive: named, never ignored
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (output / LOCK).exists()  # what a killed run leaves behind
    summary = batch(*args)
    assert f"pid {holder.pid}" in summary["stale_lock"] and "taken over" in summary["stale_lock"]
    assert not (output / LOCK).exists()  # a clean exit removes it


HOLD_LOCK = """
import sys, time
from pathlib import Path
from everylabel.batch.parts import Output
Path({folder!r}).mkdir(parents=True, exist_ok=True)
output = Output(Path({folder!r}), {{}}, [], 0)
output._take_lock()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.slow  # about 7 s; the engine under batch mode is the one the architecture tests cover
@pytest.mark.parametrize(("arch", "family"), [("encoder-decoder", "t5"), ("decoder-kv", "qwen3")])
def test_the_other_architectures_run_in_batch_mode_as_in_classify(
    backbone_dir, tmp_path: Path, arch: str, family: str
) -> None:
    model, tokenizer = create_model(backbone_dir(family), architecture_type=arch, scorer_type="mlp")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    texts = [t or "" for t in TEXTS]
    want = Classifier.from_pretrained(tmp_path / "model", backend="torch").classify(
        texts, LABELS, progress=False
    )
    source = make_input("jsonl", tmp_path / "in")
    summary = batch(*run_args(source, tmp_path / "out", str(tmp_path / "model"), "--text-column", "body"))
    assert summary["rows_written"] == len(TEXTS)
    for row, result in zip(pq.read_table(tmp_path / "out").to_pylist(), want, strict=True):
        assert dict(row["scores"]) == pytest.approx(result.scores, abs=1e-6)
