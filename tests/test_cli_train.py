"""`everylabel train` and `train-rl` from the example configs, with --set overrides."""

from __future__ import annotations

import json
from pathlib import Path

from everylabel.cli import main
from tests.backbones import minilm_dir

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_train_then_train_rl_from_the_examples(capsys, tmp_path: Path) -> None:
    out = tmp_path / "sup"
    sets = [f"model={minilm_dir()}", f"output_dir={out}", "max_steps=4", "eval_every=2"]
    code = main(["train", str(EXAMPLES / "train.yaml"), *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 4 and summary["best_step"] in (2, 4)
    assert Path(summary["final_model"], "model.safetensors").exists()

    rl_out = tmp_path / "rl"
    code = main(["train-rl", str(EXAMPLES / "train-rl.yaml"), "--set", f"model={out / 'final'}",
                 "--set", f"output_dir={rl_out}", "--set", "max_steps=3"])  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in (rl_out / "metrics.jsonl").read_text().splitlines()]
    assert any("reward_f1" in row and "value_loss" in row for row in rows)


def test_lora_example_config_runs(capsys, tmp_path: Path) -> None:
    code = main(["train", str(EXAMPLES / "train-lora.yaml"), "--set", f"model={minilm_dir()}",
                 "--set", f"output_dir={tmp_path}", "--set", "max_steps=2"])  # fmt: skip
    assert code == 0
    assert (tmp_path / "final" / "everylabel_adapter.json").exists()


def test_bad_config_and_data_give_one_line(capsys, tmp_path: Path) -> None:
    code = main(["train", str(EXAMPLES / "train.yaml"), "--set", "epocs=3"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("everylabel: error: epocs: unknown option") and err.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "all_labels": ["a"], "true_labels": ["b"]}\n')
    sets = [f"model={minilm_dir()}", f"train_data={bad}", f"output_dir={tmp_path}"]
    code = main(["train", str(EXAMPLES / "train.yaml"), *[a for s in sets for a in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2 and err == f"everylabel: error: {bad}:1: true_labels: 'b' is not in all_labels\n"
