"""The supervised trainer on tiny models: learning, exact resume after SIGKILL, checkpoints, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from everylabel.training.config import TrainConfig, TrainConfigError, config_from_dict, load_config
from everylabel.training.trainer import Trainer
from tests.backbones import minilm_dir
from tests.toy import write_toy

TOY_MODEL = {"dropout": 0.1, "class_token_pooling": "average", "scorer_type": "mlp",
             "focal_loss_alpha": -1, "focal_loss_gamma": 0}  # fmt: skip


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("toy")
    return write_toy(folder / "train.jsonl", 96, seed=0), write_toy(folder / "eval.jsonl", 48, seed=1)


def config(backbone: Path, data: tuple[Path, Path], out: Path, **overrides) -> TrainConfig:
    options = {
        "model": str(backbone),
        "train_data": str(data[0]),
        "eval_data": str(data[1]),
        "output_dir": str(out),
        "model_options": TOY_MODEL,
        "batch_size": 16,
        "encoder_lr": 1e-3,
        "head_lr": 1e-3,
        "warmup_ratio": 0.0,
        "log_every": 6,
        **overrides,
    }
    return config_from_dict(options)


def logged(out: Path, key: str) -> list[float]:
    return [
        row[key] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if key in row
    ]


def test_loss_falls_and_eval_improves_on_a_toy_task(toy_data, tmp_path: Path) -> None:
    # The real pretrained MiniLM-L6: it knows that "football" is about "sports".
    cfg = config(minilm_dir(), toy_data, tmp_path, max_steps=36, eval_every=18, encoder_lr=1e-4, head_lr=1e-3)
    trainer = Trainer(cfg)
    before = trainer.evaluate()
    result = trainer.train()
    losses = logged(tmp_path, "loss")
    assert len(losses) == 6
    assert losses[-1] < 0.5 * losses[0]
    assert result.last_eval is not None and result.last_eval["macro_f1"] > before["macro_f1"] + 0.3
    assert result.best_step in (18, 36)
    assert (tmp_path / "best" / "model.safetensors").exists() and (
        tmp_path / "final" / "config.json"
    ).exists()


def test_killed_run_resumes_to_the_same_weights(backbone_dir, toy_data, tmp_path: Path) -> None:
    common = {"max_steps": 24, "save_every": 4, "keep_checkpoints": 2, "eval_every": 8, "seed": 7}
    straight = config(backbone_dir("bert"), toy_data, tmp_path / "straight", **common)
    Trainer(straight).train()

    killed_dir = tmp_path / "killed"
    cfg_path = tmp_path / "killed.yaml"
    raw = {
        **yaml.safe_load(yaml.safe_dump(vars(config(backbone_dir("bert"), toy_data, killed_dir, **common))))
    }
    raw["lora"] = None
    cfg_path.write_text(yaml.safe_dump(raw))
    script = Path(__file__).with_name("run_slow_training.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    child = subprocess.Popen([sys.executable, str(script), str(cfg_path), "0.15"], env=env)
    deadline = time.time() + 120
    while not (killed_dir / "checkpoint-8").exists():
        assert child.poll() is None, "the training process ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    state = json.loads((killed_dir / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["step"] == 8 and 0 < state["batch_in_epoch"] < 6  # mid-epoch (6 batches an epoch)
    assert not (killed_dir / "final").exists()

    Trainer(load_config(cfg_path)).train()  # resumes from the newest checkpoint
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(killed_dir / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert logged(killed_dir, "step") == sorted(logged(killed_dir, "step"))  # no duplicated log lines
    assert logged(killed_dir, "eval_macro_f1") == logged(tmp_path / "straight", "eval_macro_f1")
    assert len(list(killed_dir.glob("checkpoint-*"))) == 2  # keep_checkpoints


def test_parameter_groups_and_schedule(backbone_dir, toy_data, tmp_path: Path) -> None:
    cfg = config(backbone_dir("bert"), toy_data, tmp_path, max_steps=10, warmup_ratio=0.2, head_lr=3e-5,
                 encoder_lr=1e-5, encoder_weight_decay=0.01, head_weight_decay=0.02)  # fmt: skip
    trainer = Trainer(cfg)
    groups = {(g["name"], g["weight_decay"]): g for g in trainer.optimizer.param_groups}
    assert set(groups) == {("encoder", 0.01), ("encoder", 0.0), ("head", 0.02), ("head", 0.0)}
    no_decay = [p for (_, wd), g in groups.items() if wd == 0.0 for p in g["params"]]
    assert all(p.ndim < 2 for p in no_decay)
    assert groups[("encoder", 0.01)]["initial_lr"] == 1e-5 and groups[("head", 0.02)]["initial_lr"] == 3e-5
    seen = []
    for _ in range(10):
        seen.append(trainer.optimizer.param_groups[0]["lr"] / trainer.optimizer.param_groups[0]["initial_lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert seen[0] < seen[1] < seen[2] and seen[2] == pytest.approx(1.0) and seen[-1] < 0.2


def test_gradient_accumulation_matches_the_bigger_batch(
    backbone_dir, toy_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def in_order(lengths, batch_size, seed, epoch, group_by_length=True):
        return [list(range(i, min(i + batch_size, len(lengths)))) for i in range(0, len(lengths), batch_size)]

    monkeypatch.setattr("everylabel.training.trainer.epoch_batches", in_order)
    common = {"max_steps": 3, "max_grad_norm": None, "model_options": {**TOY_MODEL, "dropout": 0.0}}
    one = config(backbone_dir("bert"), toy_data, tmp_path / "one", batch_size=16, grad_accum=1, **common)
    two = config(backbone_dir("bert"), toy_data, tmp_path / "two", batch_size=8, grad_accum=2, **common)
    a, b = Trainer(one), Trainer(two)
    a.train(resume=False)
    b.train(resume=False)
    wa, wb = a.model.state_dict(), b.model.state_dict()
    worst = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
    assert worst < 1e-5
    assert any((wa[k] != Trainer(one).model.state_dict()[k]).any() for k in wa)  # training moved the weights


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    base = {"model": "m", "train_data": "d", "output_dir": str(tmp_path)}
    with pytest.raises(TrainConfigError, match=r"^batchsize: unknown option"):
        config_from_dict({**base, "batchsize": 8})
    with pytest.raises(TrainConfigError, match=r"^batch_size: expected int"):
        config_from_dict({**base, "batch_size": "eight"})
    with pytest.raises(TrainConfigError, match=r"^precision: 'fp8' is not one of"):
        config_from_dict({**base, "precision": "fp8"})
    with pytest.raises(TrainConfigError, match=r"^lora.rank: unknown option"):
        config_from_dict({**base, "lora": {"rank": 4}})
    with pytest.raises(TrainConfigError, match=r"^output_dir: required option is missing"):
        config_from_dict({"model": "m", "train_data": "d"})
    with pytest.raises(TrainConfigError, match=r"^warmup_ratio: must be in"):
        config_from_dict({**base, "warmup_ratio": 2})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    cfg = load_config(path, ["batch_size=4", "lora.r=4", "head_lr=1e-4"])
    assert cfg.batch_size == 4 and cfg.lora.r == 4 and cfg.head_lr == 1e-4
