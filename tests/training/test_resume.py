"""Resume: killed runs continue to the same weights; a changed config, a torn log line, a CUDA
checkpoint on a CPU machine and a `best/` newer than the checkpoint are all handled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from everylabel.training.config import TrainConfig, TrainConfigError, config_from_dict, load_config
from everylabel.training.trainer import Trainer
from tests.toy import write_toy
from tests.training.runs import config, logged


def as_dict(config: TrainConfig) -> dict[str, Any]:
    """A config as the plain mapping YAML and `config_from_dict` take."""
    return json.loads(json.dumps(vars(config), default=vars))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    name = "model.safetensors" if (folder / "model.safetensors").exists() else "head.safetensors"
    return load_file(str(folder / name))


def _same_model(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    adapters = (
        [p.relative_to(a) for p in (a / "adapter").glob("*.safetensors")] if (a / "adapter").exists() else []
    )
    same = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for name in adapters:
        xa, xb = load_file(str(a / name)), load_file(str(b / name))
        same = same and xa.keys() == xb.keys() and all(torch.equal(xa[k], xb[k]) for k in xa)
    return same


KILLS: list[tuple[str, dict[str, Any], int]] = [
    ("plain-after-step-8", {}, 8),
    ("grad-accum-after-step-4", {"grad_accum": 2, "batch_size": 8}, 4),
    ("lora-grad-accum-after-step-12", {"grad_accum": 2, "batch_size": 8, "lora": {"r": 4, "alpha": 8}}, 12),
]


@pytest.mark.parametrize(
    ("overrides", "kill_after"),
    # the plain run is covered by the two below (gradient accumulation, LoRA): `-m slow` runs it too
    [
        pytest.param(*k[1:], id=k[0], marks=[pytest.mark.slow] if k[0].startswith("plain") else [])
        for k in KILLS
    ],
)
def test_killed_run_resumes_to_the_same_weights(
    backbone_dir, toy_data, tmp_path: Path, overrides: dict[str, Any], kill_after: int
) -> None:
    common = {
        "max_steps": 16,
        "save_every": 4,
        "keep_checkpoints": 2,
        "eval_every": 8,
        "seed": 7,
        **overrides,
    }
    straight = config(backbone_dir("bert"), toy_data, tmp_path / "straight", **common)
    Trainer(straight).train()

    killed_dir = tmp_path / "killed"
    cfg_path = tmp_path / "killed.yaml"
    raw = json.loads(
        json.dumps(vars(config(backbone_dir("bert"), toy_data, killed_dir, **common)), default=vars)
    )
    cfg_path.write_text(yaml.safe_dump(raw))
    script = Path(__file__).with_name("run_slow_training.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    child = subprocess.Popen([sys.executable, str(script), str(cfg_path), "0.15"], env=env)
    deadline = time.time() + 120
    while not (killed_dir / f"checkpoint-{kill_after}").exists():
        assert child.poll() is None, "the training process ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    newest = max(int(p.name.split("-")[1]) for p in killed_dir.glob("checkpoint-*"))
    assert newest < 16 and not (killed_dir / "final").exists()

    Trainer(load_config(cfg_path)).train()  # resumes from the newest checkpoint
    assert _same_model(tmp_path / "straight" / "final", killed_dir / "final")
    assert logged(killed_dir, "step") == sorted(logged(killed_dir, "step"))  # no duplicated log lines
    assert logged(killed_dir, "eval_macro_f1") == logged(tmp_path / "straight", "eval_macro_f1")
    assert len(list(killed_dir.glob("checkpoint-*"))) == 2  # keep_checkpoints


@pytest.fixture()
def run_to_step_4(backbone_dir, toy_data, tmp_path: Path) -> TrainConfig:
    cfg = config(backbone_dir("bert"), toy_data, tmp_path / "run", max_steps=4, save_every=2, seed=3)
    Trainer(cfg).train()
    return cfg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("batch_size", 8),
        ("max_steps", 6),
        ("seed", 4),
        ("model_options", {"dropout": 0.2}),
        ("lora", {"r": 4}),
    ],
)
def test_resume_with_a_changed_config_is_refused_naming_the_key(
    run_to_step_4: TrainConfig, key: str, value: Any
) -> None:
    raw = as_dict(run_to_step_4)
    changed = config_from_dict({**raw, key: value})
    with pytest.raises(TrainConfigError, match=rf"^{key}: the checkpoint .*checkpoint-4 was made with"):
        Trainer(changed).train()


def test_resume_with_other_data_or_model_is_refused_unless_forced(
    run_to_step_4: TrainConfig, backbone_dir, tmp_path: Path
) -> None:
    raw = as_dict(run_to_step_4)
    other = write_toy(tmp_path / "other.jsonl", 96, seed=11)
    with pytest.raises(TrainConfigError, match=r"^train_data: "):
        Trainer(config_from_dict({**raw, "train_data": str(other)})).train()
    same_records = tmp_path / "copy.jsonl"  # the same records in another file resume fine
    same_records.write_text(Path(run_to_step_4.train_data).read_text())
    Trainer(config_from_dict({**raw, "train_data": str(same_records), "max_steps": 4})).train()
    with pytest.raises(TrainConfigError, match=r"^model: "):
        Trainer(config_from_dict({**raw, "model": str(backbone_dir("electra")), "model_options": {}})).train()
    forced = Trainer(config_from_dict({**raw, "max_steps": 6}))
    assert forced.train(force_resume=True).steps == 6


def test_a_torn_last_log_line_does_not_break_resume(run_to_step_4: TrainConfig) -> None:
    out = Path(run_to_step_4.output_dir)
    raw = as_dict(run_to_step_4)
    (out / "final").rename(out / "first-final")
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"step": 5, "loss": 0.')  # killed in the middle of an append
    resumed = Trainer(config_from_dict({**raw, "log_every": 1}))
    resumed.train(force_resume=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_a_cuda_checkpoint_resumes_on_the_cpu(
    backbone_dir, toy_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(backbone_dir("bert"), toy_data, tmp_path / "run", max_steps=2, save_every=2, seed=3)
    trainer = Trainer(cfg)
    trainer.train()
    folder = tmp_path / "run" / "checkpoint-2"
    # Rewrite the optimizer state as a CUDA machine stores it: storages tagged "cuda:0".
    state = torch.load(folder / "optimizer.pt", weights_only=True)
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, folder / "optimizer.pt")
    with pytest.raises(RuntimeError, match="CUDA"):  # what a plain torch.load does on this machine
        torch.load(folder / "optimizer.pt", weights_only=True)
    resumed = Trainer(cfg)
    resumed.load_checkpoint(folder)
    assert resumed.step == 2
    moments = [s["exp_avg"] for s in resumed.optimizer.state.values()]
    assert moments and all(m.device.type == "cpu" for m in moments)


def test_best_is_never_newer_than_the_checkpoint_a_run_resumes_from(
    backbone_dir, toy_data, tmp_path: Path
) -> None:
    # Evaluating on the training data with a high learning rate: the loss falls at every evaluation,
    # so best/ is replaced at steps 2, 4 and 6, after the last checkpoint (step 4).
    data = (toy_data[0], toy_data[0])
    cfg = config(backbone_dir("bert"), data, tmp_path / "run", max_steps=6, save_every=4, eval_every=2,
                 metric_for_best="loss", seed=5)  # fmt: skip
    first = Trainer(cfg)
    first.train()
    out = tmp_path / "run"
    assert first.best_step == 6
    newest_best = _weights(out / "best")
    snapshot = out / "checkpoint-4" / "best"
    assert snapshot.is_dir() and not _same_model(out / "best", snapshot)

    resumed = Trainer(cfg)
    resumed.load_checkpoint(out / "checkpoint-4")
    assert resumed.best_step == 4 and _same_model(out / "best", snapshot)
    assert any(not torch.equal(newest_best[k], v) for k, v in _weights(out / "best").items())


def test_metric_for_best_is_checked_before_training(tmp_path: Path) -> None:
    base = {"model": "m", "train_data": "d", "output_dir": str(tmp_path)}
    with pytest.raises(TrainConfigError, match=r"^metric_for_best: 'f1' is not one of 'macro_f1'"):
        config_from_dict({**base, "metric_for_best": "f1"})
    assert config_from_dict({**base, "metric_for_best": "loss"}).metric_for_best == "loss"


def test_checkpoints_are_on_by_default(tmp_path: Path) -> None:
    default = config_from_dict({"model": "m", "train_data": "d", "output_dir": str(tmp_path)})
    assert default.save_every is not None and default.save_every >= 1
    assert (
        config_from_dict({"model": "m", "train_data": "d", "output_dir": "x", "save_every": None}).save_every
        is None
    )
