"""The PPO stage: rewards, the clipped update, baselines, KL; the mean reward rises on a toy task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from everylabel.training.config import RLConfig, TrainConfigError, config_from_dict
from everylabel.training.ppo import (
    PPOTrainer,
    exact_match_reward,
    f1_reward,
    focal_weights,
    precision_reward,
    recall_reward,
)
from tests.backbones import minilm_dir
from tests.toy import write_toy


def test_reward_functions() -> None:
    actions = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    probs = torch.full_like(actions, 0.5)
    assert f1_reward(probs, actions, targets, mask).tolist() == pytest.approx([0.5, 1.0, 1.0])
    assert precision_reward(probs, actions, targets, mask).tolist() == pytest.approx([0.5, 1.0, 1.0])
    assert recall_reward(probs, actions, targets, mask).tolist() == pytest.approx([0.5, 1.0, 1.0])
    assert exact_match_reward(probs, actions, targets, mask).tolist() == [0.0, 1.0, 1.0]


@torch.no_grad()
def mean_reward(trainer: PPOTrainer, samples: int = 4) -> float:
    """Expected F1 reward of sampled actions over the whole training set."""
    trainer.model.eval()
    generator = torch.Generator().manual_seed(0)
    total, count = 0.0, 0
    indices = list(range(len(trainer.train_set)))
    for start in range(0, len(indices), 16):
        batch = trainer.collator(
            [trainer.train_set.example(i, augment=False) for i in indices[start : start + 16]]
        )
        targets = batch.pop("labels")
        batch["max_num_classes"] = int(batch["max_num_classes"])
        out = trainer.model(**batch)
        probs = torch.sigmoid(out.logits)
        for _ in range(samples):
            actions = torch.bernoulli(probs, generator=generator)
            total += float(f1_reward(probs, actions, targets, out.label_mask.float()).sum())
            count += len(targets)
    trainer.model.train()
    return total / count


def rl_config(tmp_path: Path, data: Path, **overrides) -> RLConfig:
    return config_from_dict(
        {
            "model": str(minilm_dir()),
            "train_data": str(data),
            "output_dir": str(tmp_path / "rl"),
            "model_options": {"class_token_pooling": "average", "scorer_type": "mlp", "dropout": 0.0},
            "batch_size": 16,
            "encoder_lr": 1e-4,
            "head_lr": 1e-3,
            "warmup_ratio": 0.0,
            "log_every": 3,
            "seed": 3,
            **overrides,
        },
        RLConfig,
    )


# 28 s each on the 2-core machine: `-m slow`; PPO's loop runs by default in test_ppo_resumes_exactly
@pytest.mark.parametrize(
    "baseline", [pytest.param(b, marks=pytest.mark.slow) for b in ("batch_mean", "value_model")]
)
def test_ppo_raises_the_mean_reward_on_a_toy_task(tmp_path: Path, baseline: str) -> None:
    data = write_toy(tmp_path / "train.jsonl", 96)
    config = rl_config(tmp_path, data, max_steps=36, inner_iters=3, baseline=baseline, kl_beta=0.01,
                       entropy_beta=0.001)  # fmt: skip
    trainer = PPOTrainer(config)
    before = mean_reward(trainer)
    trainer.train()
    after = mean_reward(trainer)
    assert after > before + 0.1
    rows = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert len([row for row in rows if "reward_f1" in row]) == 12  # a line every 3 steps (3 inner updates)
    assert all(row["kl"] >= 0 for row in rows if "kl" in row)
    if baseline == "value_model":
        assert all("value_loss" in row for row in rows if "reward" in row)


def test_ppo_resumes_exactly(tmp_path: Path) -> None:
    data = write_toy(tmp_path / "train.jsonl", 32)
    common = {"max_steps": 6, "inner_iters": 2, "batch_size": 8, "baseline": "value_model", "save_every": 2}
    straight = rl_config(tmp_path / "a", data, **common)
    PPOTrainer(straight).train()
    partial = rl_config(tmp_path / "b", data, **{**common, "max_steps": 6})
    trainer = PPOTrainer(partial)
    trainer.total_steps = 4  # stop after the step-4 checkpoint, then resume (value head, RNG, data)
    trainer.train()
    PPOTrainer(rl_config(tmp_path / "b", data, **common)).train()
    fa = load_file(str(tmp_path / "a" / "rl" / "final" / "model.safetensors"))
    fb = load_file(str(tmp_path / "b" / "rl" / "final" / "model.safetensors"))
    assert all(torch.equal(fa[k], fb[k]) for k in fa)


def test_ppo_config_is_checked(tmp_path: Path) -> None:
    base = {"model": "m", "train_data": "d", "output_dir": str(tmp_path)}
    with pytest.raises(TrainConfigError, match="problem_type: the PPO stage is multi-label only"):
        config_from_dict({**base, "problem_type": "single_label"}, RLConfig)
    with pytest.raises(TrainConfigError, match=r"cliprange: must be in \(0, 1\)"):
        config_from_dict({**base, "cliprange": 1.5}, RLConfig)
    with pytest.raises(TrainConfigError, match="grad_accum"):
        config_from_dict({**base, "grad_accum": 2}, RLConfig)


def test_focal_weights_favour_what_the_model_gets_wrong_and_carry_no_gradient() -> None:
    logits = torch.tensor([[4.0, -4.0, 0.0]], requires_grad=True)
    probs = torch.sigmoid(logits)
    gold = torch.tensor([[1.0, 1.0, 0.0]])  # right and confident, wrong and confident, unsure
    weights = focal_weights(probs, gold, gamma=2.0, alpha=-1.0)
    assert not weights.requires_grad
    right, wrong, unsure = weights[0].tolist()
    assert right < unsure < wrong
    assert wrong == pytest.approx((1 - float(torch.sigmoid(torch.tensor(-4.0)))) ** 2)
    alpha = focal_weights(probs, gold, gamma=-1.0, alpha=0.25)
    assert alpha[0].tolist() == pytest.approx([0.25, 0.25, 0.75])


def test_old_log_probabilities_come_with_dropout_off(tmp_path: Path, monkeypatch) -> None:
    data = write_toy(tmp_path / "train.jsonl", 16)
    options = {"class_token_pooling": "average", "scorer_type": "mlp", "dropout": 0.3}
    config = rl_config(tmp_path, data, max_steps=2, inner_iters=2, batch_size=8, model_options=options)
    trainer = PPOTrainer(config)
    modes: list[tuple[bool, bool]] = []  # (no_grad, training) at each forward of the policy
    real_forward = type(trainer.model).forward

    def spy(model, *args, **kwargs):
        modes.append((not torch.is_grad_enabled(), model.training))
        return real_forward(model, *args, **kwargs)

    monkeypatch.setattr(type(trainer.model), "forward", spy)
    trainer.train()
    sampling = [training for no_grad, training in modes if no_grad]
    updates = [training for no_grad, training in modes if not no_grad]
    assert sampling and not any(sampling)  # actions and old log-probs: eval mode
    assert updates and all(updates)  # the clipped updates: train mode


class _SpyScaler:
    """Stands in for the fp16 GradScaler (CUDA only) and records the order of its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        self.calls.append("scale")
        return loss * 1024.0

    def unscale_(self, optimizer) -> None:
        self.calls.append("unscale")
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.grad.div_(1024.0)

    def step(self, optimizer) -> None:
        self.calls.append("step")
        optimizer.step()

    def update(self) -> None:
        self.calls.append("update")


def test_the_policy_loss_is_scaled_before_the_scaler_unscales_it(tmp_path: Path) -> None:
    data = write_toy(tmp_path / "train.jsonl", 16)
    trainer = PPOTrainer(rl_config(tmp_path, data, max_steps=2, inner_iters=2, batch_size=8))
    scaler = _SpyScaler()
    trainer.scaler = scaler  # type: ignore[assignment]
    trainer.train()
    assert scaler.calls == ["scale", "unscale", "step", "update"] * 2


@pytest.mark.slow  # 20 s on the 2-core machine; PPO's loop runs by default in test_ppo_resumes_exactly
def test_ppo_trains_a_bi_encoder(tmp_path: Path) -> None:
    data = write_toy(tmp_path / "train.jsonl", 96)
    options = {"architecture_type": "bi-encoder", "pooling_strategy": "avg", "normalize_features": True,
               "logit_scale_init_value": 10.0, "dropout": 0.0}  # fmt: skip
    config = rl_config(tmp_path, data, model_options=options, max_steps=24, inner_iters=3, kl_beta=0.01)
    trainer = PPOTrainer(config)
    before = mean_reward(trainer)
    trainer.train()
    assert mean_reward(trainer) > before + 0.05
