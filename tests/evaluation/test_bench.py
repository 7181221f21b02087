"""`everylabel bench throughput` end to end on tiny models: every system, every grid point, outputs."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import BertForSequenceClassification

from everylabel import create_model
from everylabel.cli import main
from tests import backbones


def test_bench_throughput_writes_every_point_for_every_system(backbone_dir, tmp_path: Path, capsys) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp")
    model.save_pretrained(tmp_path / "gliclass")
    tokenizer.save_pretrained(tmp_path / "gliclass")
    names = {0: "entailment", 1: "neutral", 2: "contradiction"}
    config = backbones.tiny_config("bert", tokenizer)
    config.num_labels, config.id2label, config.label2id = 3, names, {v: k for k, v in names.items()}
    BertForSequenceClassification(config).save_pretrained(tmp_path / "nli")
    backbones.tokenizer_for("bert").save_pretrained(tmp_path / "nli")
    out = tmp_path / "out"

    code = main(
        ["bench", "throughput", "--model", str(tmp_path / "gliclass"), "--name", "tiny GLiClass",
         "--cross-encoder", str(tmp_path / "nli"), "--labels", "1,3", "--lengths", "16,32",
         "--batch-sizes", "1,2", "--texts", "2", "--cross-encoder-pairs", "2", "--device", "cpu",
         "--dtype", "fp32", "--out", str(out)]
    )  # fmt: skip

    assert code == 0
    report = json.loads((out / "throughput.json").read_text())
    points = {(r["labels"], r["length"], r["batch_size"]) for r in report["rows"]}
    assert points == {(n, length, b) for n in (1, 3) for length in (16, 32) for b in (1, 2)}
    for row in report["rows"]:
        for system in ("everylabel", "official", "cross-encoder"):
            assert row[system] > 0
        assert abs(row["vs_official"] - row["everylabel"] / row["official"]) < 1e-9
    assert report["meta"]["device"] == "cpu"
    table = (out / "throughput.md").read_text()
    assert table.startswith("tiny GLiClass on CPU") and table.count("\n|") >= 8
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert len(capsys.readouterr().out.strip().splitlines()) >= 8  # one line per point as it runs
