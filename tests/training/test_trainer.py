"""The supervised trainer on tiny models: learning, schedules, accumulation, pooling, model sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from everylabel import Classifier, create_model
from everylabel.training.config import TrainConfigError, config_from_dict, load_config
from everylabel.training.trainer import Trainer
from tests.backbones import minilm_dir
from tests.training.runs import TOY_MODEL, config, logged


@pytest.mark.slow  # 25 s here; training that learns runs by default in the few-shot and bi-encoder tests
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


def test_training_pools_as_the_classifier_serves(backbone_dir, toy_data, tmp_path: Path) -> None:
    options = {**TOY_MODEL, "pooling_strategy": "avg", "dropout": 0.0}
    for mask_padding in (True, False):
        out = tmp_path / str(mask_padding)
        cfg = config(backbone_dir("bert"), toy_data, out, max_steps=1, model_options=options,
                     mask_padding=mask_padding)  # fmt: skip
        trainer = Trainer(cfg)
        batch = trainer.collate(list(range(16)), epoch=0)
        assert not bool(batch["attention_mask"].all())  # texts of different lengths: padding
        trainer.model.eval()
        with torch.no_grad():
            used = trainer.forward(batch).logits
            served = trainer.model(**batch, mask_padding=mask_padding).logits
            other = trainer.model(**batch, mask_padding=not mask_padding).logits
        assert torch.equal(used, served) and not torch.allclose(used, other, rtol=1e-3, atol=0.0)
        trainer.train()
        saved = json.loads((out / "final" / "config.json").read_text())
        assert saved["mask_padding"] is mask_padding
        assert Classifier.from_pretrained(out / "final", device="cpu").mask_padding is mask_padding


def test_a_hub_gliclass_id_is_trained_as_a_checkpoint(backbone_dir, tmp_path: Path) -> None:
    """A hub id (here from the local hub cache, offline) of a GLiClass model is not a bare backbone."""
    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp")
    snapshot = tmp_path / "hub" / "models--acme--tiny-gliclass" / "snapshots" / ("0" * 40)
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    code = (
        "from everylabel.training.trainer import load_or_create\n"
        "from everylabel.errors import TrainConfigError\n"
        "model, _ = load_or_create('acme/tiny-gliclass', {})\n"
        "print(type(model).__name__, model.config.scorer_type)\n"
        "try:\n    load_or_create('acme/tiny-gliclass', {'scorer_type': 'simple'})\n"
        "except TrainConfigError as error:\n    print(error)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "GLiClassModel mlp"
    assert lines[1].startswith("model_options: only for a new model")
