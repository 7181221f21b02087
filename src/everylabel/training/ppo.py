"""The PPO stage for multi-label GLiClass: one Bernoulli action per label, one reward per example.

For each batch: sample actions from the current model, score them with the reward components,
subtract a baseline (the batch mean or a learned value head), then run `inner_iters` clipped
policy updates on the same batch. Options: KL to a frozen copy of the starting model (k3
estimator), an entropy bonus, focal weighting of each label's term ((1 - p_t) ** gamma, detached).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .config import RLConfig, TrainConfigError
from .trainer import Trainer

# reward(probs, actions, targets, mask) -> (batch,) rewards; every tensor (batch, labels)
Reward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _counts(actions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    predicted = actions * mask
    gold = (targets >= 0.5).to(actions.dtype) * mask
    return (predicted * gold).sum(-1), predicted.sum(-1), gold.sum(-1)


def f1_reward(
    probs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Per-example F1 of the chosen labels against the gold ones (1.0 when both are empty)."""
    tp, predicted, gold = _counts(actions, targets, mask)
    denominator = predicted + gold
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.ones_like(tp))


def precision_reward(
    probs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    tp, predicted, _ = _counts(actions, targets, mask)
    return torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.ones_like(tp))


def recall_reward(
    probs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    tp, _, gold = _counts(actions, targets, mask)
    return torch.where(gold > 0, tp / gold.clamp(min=1), torch.ones_like(tp))


def exact_match_reward(
    probs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    wrong = ((actions != (targets >= 0.5).to(actions.dtype)) & mask.bool()).any(-1)
    return (~wrong).to(actions.dtype)


REWARDS: dict[str, Reward] = {
    "f1": f1_reward,
    "precision": precision_reward,
    "recall": recall_reward,
    "exact_match": exact_match_reward,
}


def focal_weights(probs: torch.Tensor, gold: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """Per-label weights of the policy terms, as in the focal loss; no gradient flows through them.

    (1 - p_t) ** gamma for gamma > 0, where p_t is the probability the model gives the gold answer:
    labels it already gets right weigh less. alpha >= 0 weights positives by alpha, negatives by
    1 - alpha. probs, gold: (batch, labels) -> (batch, labels).
    """
    probs, gold = probs.detach(), gold.detach()
    weights = torch.ones_like(probs)
    if gamma > 0:
        p_t = probs * gold + (1 - probs) * (1 - gold)
        weights = weights * (1 - p_t) ** gamma
    if alpha >= 0:
        weights = weights * (alpha * gold + (1 - alpha) * (1 - gold))
    return weights


class ValueHead(nn.Module):
    """Predicts an example's expected reward from its text vector (the learned baseline)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, text_vectors: torch.Tensor) -> torch.Tensor:
        if text_vectors.dim() == 3:  # "pass" pooling keeps every token
            text_vectors = text_vectors.mean(dim=1)
        return self.net(text_vectors).squeeze(-1)


class PPOTrainer(Trainer):
    """The PPO stage with the supervised trainer's checkpoints, resume and logging."""

    config: RLConfig

    def __init__(
        self, config: RLConfig, *args: Any, rewards: dict[str, Reward] | None = None, **kwargs: Any
    ) -> None:
        known = {**REWARDS, **(rewards or {})}
        for name in config.rewards:
            if name not in known:
                raise TrainConfigError(f"rewards.{name}: unknown reward (known: {', '.join(sorted(known))})")
        self.reward_fns = {name: known[name] for name in config.rewards}
        super().__init__(config, *args, **kwargs)
        self.steps_itself = True
        self.reference = None
        if config.kl_beta > 0:
            self.reference = copy.deepcopy(self.model).eval()
            for param in self.reference.parameters():
                param.requires_grad_(False)
        self.value_head: ValueHead | None = None
        if config.baseline == "value_model":
            self.value_head = ValueHead(self.model.config.encoder_hidden_size).to(self.device)
            self.value_optimizer = torch.optim.AdamW(self.value_head.parameters(), lr=config.value_lr)

    def _total_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        return max(1, int(self.config.epochs * self.batches_per_epoch)) * self.config.inner_iters

    def _action_log_probs(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # log p(a) of a Bernoulli(sigmoid(logit)) action, per label: (batch, labels)
        return actions * F.logsigmoid(logits) + (1 - actions) * F.logsigmoid(-logits)

    def training_batch(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        targets = batch.pop("labels").float()
        with torch.no_grad():
            self.model.eval()  # actions and old log-probabilities from the policy itself, dropout off
            try:
                out = self.forward({**batch, "output_text_embeddings": True})
            finally:
                self.model.train()
            logits = out.logits.float()
            mask = out.label_mask.to(logits.dtype)
            probs = torch.sigmoid(logits)
            if cfg.actions == "bernoulli":
                actions = torch.bernoulli(probs)
            else:
                actions = (probs >= cfg.threshold).to(logits.dtype)
            old_log_probs = self._action_log_probs(logits, actions)
            parts = {name: fn(probs, actions, targets, mask) for name, fn in self.reward_fns.items()}
            reward = sum(cfg.rewards[name] * value for name, value in parts.items())
            assert isinstance(reward, torch.Tensor)
            reference_log_probs = None
            if self.reference is not None:
                reference_logits = self.reference(**batch).logits.float()
                reference_log_probs = self._action_log_probs(reference_logits, actions)
        text_vectors = out.text_embeddings.detach().float()
        if self.value_head is not None:
            baseline = self.value_head(text_vectors).detach()
        else:
            baseline = reward.mean().expand_as(reward)
        advantages = (reward - baseline).unsqueeze(-1)  # (batch, 1)

        stats: dict[str, float] = {"reward": float(reward.mean())}
        stats.update({f"reward_{name}": float(value.mean()) for name, value in parts.items()})
        stats["advantage_abs"] = float(advantages.abs().mean())
        totals = {"loss": 0.0, "kl": 0.0, "entropy": 0.0, "clipped": 0.0}
        iterations = 0
        for _ in range(cfg.inner_iters):
            if self.step >= self.total_steps:
                break
            with self.autocast():
                logits = self.model(**batch).logits.float()
            log_probs = self._action_log_probs(logits, actions)
            ratio = torch.exp(log_probs - old_log_probs)
            clipped = torch.clamp(ratio, 1 - cfg.cliprange, 1 + cfg.cliprange)
            per_label = -torch.min(ratio * advantages, clipped * advantages)
            probs = torch.sigmoid(logits)
            gold = (targets >= 0.5).to(logits.dtype)
            per_label = per_label * focal_weights(probs, gold, cfg.focal_gamma, cfg.focal_alpha)
            valid = mask.sum().clamp(min=1)
            loss = (per_label * mask).sum() / len(targets)
            entropy = -(probs * F.logsigmoid(logits) + (1 - probs) * F.logsigmoid(-logits))
            mean_entropy = (entropy * mask).sum() / valid
            if cfg.entropy_beta:
                loss = loss - cfg.entropy_beta * mean_entropy  # a bonus: higher entropy lowers the loss
            if reference_log_probs is not None:
                delta = reference_log_probs - log_probs
                kl = ((torch.exp(delta) - delta - 1) * mask).sum() / valid  # k3 estimator of KL(pi || ref)
                loss = loss + cfg.kl_beta * kl
                totals["kl"] += float(kl.detach())
            self.backward(loss)  # scaled under fp16, unscaled again by the optimizer step
            self.optimizer_step()
            iterations += 1
            totals["loss"] += float(loss.detach())
            totals["entropy"] += float(mean_entropy.detach())
            totals["clipped"] += float((((ratio - 1).abs() > cfg.cliprange).float() * mask).sum() / valid)
        stats.update({key: value / max(iterations, 1) for key, value in totals.items()})

        if self.value_head is not None:
            value_loss = F.mse_loss(self.value_head(text_vectors), reward)
            value_loss.backward()
            self.value_optimizer.step()
            self.value_optimizer.zero_grad(set_to_none=True)
            stats["value_loss"] = float(value_loss.detach())
        return stats

    def save_extra_state(self, folder: Path) -> None:
        if self.value_head is not None:
            save_file(self.value_head.state_dict(), str(folder / "value_head.safetensors"))
            torch.save(self.value_optimizer.state_dict(), folder / "value_optimizer.pt")

    def load_extra_state(self, folder: Path) -> None:
        if self.value_head is not None:
            self.value_head.load_state_dict(
                load_file(str(folder / "value_head.safetensors"), device=str(self.device))
            )
            self.value_optimizer.load_state_dict(self.load(folder / "value_optimizer.pt"))
