"""`everylabel batch --engine ray` and `ClassifyBatch` in a Ray Data pipeline, on one local Ray instance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from everylabel import Classifier  # noqa: E402
from everylabel.cli_io import CliError  # noqa: E402
from everylabel.integrations.ray import ClassifyBatch  # noqa: E402
from tests.test_batch import LABELS, batch, run_args, save_tiny_model, write_jsonl  # noqa: E402

TEXTS = [f"text {i}: " + "the vote, the match and the comet " * (i % 6) for i in range(90)]


@pytest.fixture(scope="module")
def model_dir(backbone_dir, tmp_path_factory) -> str:
    return save_tiny_model(backbone_dir, tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Any:
    """One local Ray instance for the module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_local_and_ray_engines_write_the_same_parts(model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_jsonl(
        source, [{"text": text, "key": i} for i, text in enumerate(TEXTS)] + [{"text": None, "key": 90}]
    )
    common = ("--part-rows", "13", "--id-column", "key")
    local = batch(*run_args(source, tmp_path / "local", model_dir, *common, "--threads", "1"))
    remote = batch(
        *run_args(source, tmp_path / "ray", model_dir, *common, "--engine", "ray", "--workers", "2")
    )
    assert local["parts"] == remote["parts_written"] == 7 and remote["engine"] == "ray"
    names = sorted(p.name for p in (tmp_path / "local").glob("part-*.parquet"))
    assert names == sorted(p.name for p in (tmp_path / "ray").glob("part-*.parquet"))
    for name in names:  # the same rows, classified in the same batches with the same threads
        assert pq.read_table(tmp_path / "local" / name).equals(pq.read_table(tmp_path / "ray" / name))
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    table = pq.read_table(tmp_path / "ray")
    assert table.column("index").to_pylist() == list(range(91))
    assert table.column("id").to_pylist() == [str(i) for i in range(91)]
    assert table.column("empty").to_pylist() == [False] * 90 + [True]
    manifest = json.loads((tmp_path / "ray" / "_manifest.json").read_text())
    assert manifest["complete"] and len(manifest["parts"]) == 7


@pytest.mark.slow  # a Ray start of its own; the engines' equality above runs by default
def test_an_error_in_an_actor_is_one_line(model_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_jsonl(source, [{"text": "short"}, {"text": "far too long for the window " * 40}])
    args = run_args(source, tmp_path / "out", model_dir, "--engine", "ray", "--truncation", "error")
    with pytest.raises(CliError, match=r"^input row 1: \d+ tokens, but only \d+ fit") as caught:
        batch(*args, "--max-length", "100")
    assert "\n" not in str(caught.value)


@pytest.mark.slow  # 10 s; test_local_and_ray_engines_write_the_same_parts runs Ray by default
def test_classify_batch_in_a_users_ray_pipeline(model_dir: str) -> None:
    rows = [{"text": text, "doc": i} for i, text in enumerate(TEXTS[:20])]
    dataset = ray.data.from_items(rows).map_batches(
        ClassifyBatch,
        fn_constructor_kwargs={"model": model_dir, "labels": LABELS, "backend": "torch"},
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_format="pyarrow",
    )
    results = sorted(dataset.take_all(), key=lambda row: row["doc"])
    expected = Classifier.from_pretrained(model_dir, backend="torch").classify(
        TEXTS[:20], LABELS, progress=False
    )
    assert [row["doc"] for row in results] == list(range(20))
    for row, want in zip(results, expected, strict=True):
        assert dict(row["scores"]) == pytest.approx(want.scores, abs=1e-6)
        assert row["labels"] == want.labels and row["text"] == TEXTS[row["doc"]]
