"""The supervised trainer: a plain PyTorch loop with exact resume.

Parameter groups for the encoder and the head (own lr and weight decay; none on biases and
norms), warmup + linear schedule, gradient accumulation and clipping, bf16/fp16 autocast,
evaluation every N steps with best-model tracking, checkpoints every N steps keeping K, a JSONL
metrics log, and resume after a kill: model, optimizer, scheduler, RNG and the data position
are restored, so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file, save_file

from ..config import GLiClassConfig
from ..label_tokens import LabelTokens
from ..loading import create_model, is_gliclass_checkpoint, load_model
from ..metrics import f1_scores
from ..modeling.bi_encoder import BiEncoder
from ..modeling.decoder_kv import DecoderKV
from ..modeling.losses import platt_level_loss
from ..modeling.model import GLiClassModel
from ..prompt import InputBuilder
from ..runtime import label_max_length, model_max_length, resolve_device
from ..tokenization import load_label_tokenizer
from . import checkpoints
from .config import LOWER_IS_BETTER, TrainConfig, TrainConfigError
from .data import Record, load_descriptions, load_records
from .dataset import Augment, Collator, TrainingSet, epoch_batches
from .lora import apply_lora, export_model
from .order_consistency import consistency_loss, pair_slots, reordered


@dataclass
class TrainResult:
    steps: int
    best_metric: float | None
    best_step: int | None
    output_dir: str
    last_eval: dict[str, float] | None


def load_or_create(
    source: str, options: dict[str, Any], head_init: str = "random"
) -> tuple[GLiClassModel, Any]:
    """A GLiClass checkpoint as it is, or a new model on a backbone (with `options` as config keys)."""
    if is_gliclass_checkpoint(source):
        if options:
            raise TrainConfigError("model_options: only for a new model; the checkpoint has its own config")
        if head_init != "random":
            raise TrainConfigError("head_init: only for a new model; the checkpoint has its own head")
        model, tokenizer = load_model(source)
        return model, tokenizer
    model, tokenizer = create_model(source, **options)  # records a packaged backbone by its portable name
    if head_init == "identity":
        if isinstance(model.model, DecoderKV):
            raise TrainConfigError("head_init: identity: the decoder-kv scorer has no projector pair to set")
        try:
            model.model.text_projector.init_identity()
            model.model.classes_projector.init_identity()
            if isinstance(model.model, BiEncoder):
                model.model.biencoder_projector.init_identity()
        except ValueError as error:
            raise TrainConfigError(f"head_init: identity: {error}") from None
    return model, tokenizer


class Trainer:
    """Trains a GLiClass model on records in the official format."""

    def __init__(
        self,
        config: TrainConfig,
        model: GLiClassModel | None = None,
        tokenizer: Any = None,
        train_records: Sequence[Record] | None = None,
        eval_records: Sequence[Record] | None = None,
        label_tokenizer: Any = None,
    ) -> None:
        config.validate()
        self.config = config
        self.device = resolve_device(config.device)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise TrainConfigError("precision: fp16 needs CUDA; use bf16 or fp32 on the CPU")
        torch.manual_seed(config.seed)
        if model is None:
            model, tokenizer = load_or_create(config.model, config.model_options, config.head_init)
        self.multi_label = config.problem_type == "multi_label"
        no_dropout = config.order_consistency and not config.order_consistency_dropout
        if no_dropout and isinstance(model.model, DecoderKV):
            raise TrainConfigError(
                "order_consistency_dropout: false runs the model in eval mode, where the decoder-kv "
                "scorer does not train its recurrent steps; keep dropout for this architecture"
            )
        self.model = self._prepare_model(model)
        self.tokenizer = tokenizer
        self.output_dir = Path(config.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._load_data(train_records, eval_records)
        self.collator = self._build_collator(label_tokenizer)

        self.optimizer = self._build_optimizer()
        self.batches_per_epoch = math.ceil(len(self.train_set) / config.batch_size)
        self.total_steps = self._total_steps()
        warmup = int(config.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._schedule(warmup))
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None

        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.last_eval: dict[str, float] | None = None
        self.steps_itself = False  # a subclass whose training_batch makes its own optimizer steps
        self._window: list[dict[str, float]] = []
        self._window_start = time.perf_counter()
        self._window_examples = 0

    # -- setup -----------------------------------------------------------------------------------

    def _prepare_model(self, model: GLiClassModel) -> GLiClassModel:
        """The model set up for this run: its problem type and pooling recorded (so the checkpoint
        is served as it was trained), LoRA applied, backbones frozen if asked, on the device."""
        config = self.config
        model.config.problem_type = (
            "multi_label_classification" if self.multi_label else "single_label_classification"
        )
        model.config.mask_padding = config.mask_padding
        if config.lora is not None:
            model = apply_lora(model, config.lora)
        if config.freeze_encoder:
            for param in model.encoder.parameters():
                param.requires_grad_(False)
            if model.label_encoder is not None:
                for param in model.label_encoder.parameters():
                    param.requires_grad_(False)
        torch.nn.Module.to(model, self.device)
        return model

    def _load_data(
        self, train_records: Sequence[Record] | None, eval_records: Sequence[Record] | None
    ) -> None:
        """The training and eval sets (read from the config's files unless given), with what was skipped."""
        config = self.config
        self.skipped: list[str] = []
        if train_records is None:
            train_records, self.skipped = load_records(config.train_data, config.skip_invalid)
        if eval_records is None and config.eval_data:
            eval_records, skipped = load_records(config.eval_data, config.skip_invalid)
            self.skipped += skipped
        descriptions = load_descriptions(config.descriptions) if config.descriptions else None
        augment = Augment(
            shuffle_labels=config.shuffle_labels,
            max_labels=config.max_labels,
            negatives=config.negatives,
            drop_labels=config.aug_drop_labels,
            add_random_labels=config.aug_add_labels,
            descriptions=config.aug_descriptions,
            examples=config.aug_examples,
            examples_per_label=config.aug_examples_per_label,
        )
        self.data_fingerprint = checkpoints.data_fingerprint(train_records)
        self.train_set = TrainingSet(train_records, augment, descriptions, config.seed)
        self.eval_set = TrainingSet(eval_records, seed=config.seed) if eval_records else None
        self.lengths = [self.train_set.length(i) for i in range(len(self.train_set))]

    def _build_collator(self, label_tokenizer: Any) -> Collator:
        """Batches laid out by the one input layout (`prompt.py`), as the Classifier lays them out."""
        gliclass_config = cast(GLiClassConfig, self.model.config)
        max_length = self.config.max_length or model_max_length(gliclass_config)
        builder = InputBuilder(self.tokenizer, gliclass_config, max_length)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        label_tokens = None
        if gliclass_config.is_bi_encoder:
            label_tokens = LabelTokens(
                label_tokenizer or load_label_tokenizer(gliclass_config), label_max_length(gliclass_config)
            )
        ignore = gliclass_config.ignore_index
        level = self.config.level_loss > 0
        soft, sources = self.config.soft_targets, self.config.level_sources
        return Collator(builder, self.multi_label, pad, ignore, label_tokens, soft, level, sources)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
        backbone = f"model.{self.model.backbone_name}."
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            part = "encoder" if name.startswith(backbone) else "head"
            groups.setdefault((part, param.ndim >= 2), []).append(param)
        settings = {
            "encoder": (cfg.encoder_lr, cfg.encoder_weight_decay),
            "head": (cfg.head_lr, cfg.head_weight_decay),
        }
        param_groups = [
            {
                "params": params,
                "lr": settings[part][0],
                "weight_decay": settings[part][1] if decay else 0.0,
                "name": part,
            }
            for (part, decay), params in sorted(groups.items())
        ]
        return torch.optim.AdamW(param_groups)

    def _total_steps(self) -> int:
        cfg = self.config
        if cfg.max_steps is not None:
            return cfg.max_steps
        return max(1, math.ceil(cfg.epochs * self.batches_per_epoch / cfg.grad_accum))

    def _schedule(self, warmup: int) -> Any:
        total = self.total_steps
        constant = self.config.scheduler == "constant"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            if constant:
                return 1.0
            return max(0.0, (total - step) / max(1, total - warmup))

        return factor

    def autocast(self) -> Any:
        precision = self.config.precision
        if precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # -- one batch -------------------------------------------------------------------------------

    def collate(self, indices: Sequence[int], epoch: int) -> dict[str, Any]:
        """One training batch; with `order_consistency`, also the batch of the same examples in
        other label orders ("reordered") and the slot pairing of their labels ("order_pairs")."""
        examples = [self.train_set.example(i, epoch) for i in indices]
        tensors, names = self.collator.collate(examples)
        batch = self.to_device(tensors)
        if self.config.order_consistency > 0:
            seed = self.config.seed
            other = [
                reordered(example, random.Random(f"{seed}:{epoch}:{index}:order"))
                for example, index in zip(examples, indices, strict=True)
            ]
            other_tensors, other_names = self.collator.collate(other)
            batch["reordered"] = self.to_device(other_tensors)
            pairs = pair_slots(names, other_names, int(tensors["max_num_classes"]))
            batch["order_pairs"] = pairs.to(self.device)
        return batch

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Tensors onto the training device; the label-slot count as a plain int."""
        return {k: (v.to(self.device) if k != "max_num_classes" else int(v)) for k, v in batch.items()}

    def forward(self, batch: dict[str, Any]) -> Any:
        """The model's output; with `level_loss`, its loss carries the weighted level term too."""
        level = batch.get("level_targets")
        inputs = {k: v for k, v in batch.items() if k not in ("level_targets", "level_rows")}
        with self.autocast():
            out = self.model(**inputs, mask_padding=self.config.mask_padding)
        if level is not None and out.loss is not None:
            cfg = self.config
            rows = batch["level_rows"]  # (batch,) bool, beside the level targets (Collator)
            read = out.label_mask.bool() & rows[:, None]  # (batch, slots): real slots of leveled rows
            term = platt_level_loss(out.logits, level, read, cfg.level_scale, cfg.level_bias)
            out.loss = out.loss + cfg.level_loss * term
        return out

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate `loss`, scaled first under fp16 (the optimizer step unscales it)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def training_batch(self, batch: dict[str, Any]) -> dict[str, float]:
        """Loss and backward for one micro-batch (scaled for accumulation)."""
        if "reordered" in batch:
            return self._consistent_batch(batch)
        out = self.forward(batch)
        self.backward(out.loss / self.config.grad_accum)
        return {"loss": float(out.loss.detach())}

    def _consistent_batch(self, batch: dict[str, Any]) -> dict[str, float]:
        """Both orders' task losses, averaged, plus the weighted logit gap between the orders."""
        batch = dict(batch)
        other, pairs = batch.pop("reordered"), batch.pop("order_pairs")
        dropout = self.config.order_consistency_dropout
        self.model.train(dropout)
        try:
            out, other_out = self.forward(batch), self.forward(other)
        finally:
            self.model.train()
        task = (out.loss + other_out.loss) / 2
        relative = self.config.order_consistency_gap == "relative"
        gap = consistency_loss(out.logits.float(), other_out.logits.float(), pairs, relative)
        self.backward((task + self.config.order_consistency * gap) / self.config.grad_accum)
        return {"loss": float(task.detach()), "order_gap": float(gap.detach())}

    def optimizer_step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.config.max_grad_norm:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    # -- the loop --------------------------------------------------------------------------------

    def train(self, resume: str | bool = "auto", force_resume: bool = False) -> TrainResult:
        """Train to the end; `resume="auto"` continues from the newest checkpoint in output_dir.

        A checkpoint made with another config or other data is refused unless `force_resume`.
        """
        checkpoint = checkpoints.find_checkpoint(self.output_dir, resume)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, force=force_resume)
        checkpoints.trim_log(self.output_dir / "metrics.jsonl", self.step)
        cfg = self.config
        self.model.train()
        bar = self._progress()
        while self.step < self.total_steps:
            batches = epoch_batches(self.lengths, cfg.batch_size, cfg.seed, self.epoch, cfg.group_by_length)
            while self.batch_in_epoch < len(batches) and self.step < self.total_steps:
                indices = batches[self.batch_in_epoch]
                batch = self.collate(indices, self.epoch)
                self.batch_in_epoch += 1
                before = self.step
                stats = self.training_batch(batch)
                self._window.append(stats)
                self._window_examples += len(indices)
                boundary = self.batch_in_epoch % cfg.grad_accum == 0 or self.batch_in_epoch == len(batches)
                if not self.steps_itself and boundary:
                    self.optimizer_step()
                if self.step > before:
                    self._after_steps(before)
                    if bar is not None:
                        bar.update(self.step - before)
            if self.batch_in_epoch >= len(batches):
                self.epoch += 1
                self.batch_in_epoch = 0
        if bar is not None:
            bar.close()
        if self.eval_set is not None and (self.last_eval is None or self.last_eval.get("step") != self.step):
            self._evaluate_and_track()
        export_model(self.model, self.tokenizer, self.output_dir / "final")
        return TrainResult(self.step, self.best_metric, self.best_step, str(self.output_dir), self.last_eval)

    def _after_steps(self, before: int) -> None:
        cfg = self.config

        def crossed(every: int | None) -> bool:
            return bool(every) and self.step // every > before // every  # type: ignore[operator]

        if crossed(cfg.log_every) or self.step == self.total_steps:
            self._log_window()
        if crossed(cfg.eval_every) and self.eval_set is not None:
            self._evaluate_and_track()
        if crossed(cfg.save_every):
            self.save_checkpoint()

    def _log_window(self) -> None:
        if not self._window:
            return
        elapsed = time.perf_counter() - self._window_start
        record: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        for key in self._window[0]:
            record[key] = sum(s[key] for s in self._window) / len(self._window)
        for group in self.optimizer.param_groups:
            record[f"lr_{group['name']}"] = group["lr"]
        record["examples_per_s"] = self._window_examples / elapsed if elapsed > 0 else 0.0
        self.log(record)
        self._window, self._window_examples, self._window_start = [], 0, time.perf_counter()

    def log(self, record: dict[str, Any]) -> None:
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    # -- evaluation ------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss, accuracy and micro/macro/weighted F1 on the eval records (no augmentation)."""
        assert self.eval_set is not None
        rng = torch.get_rng_state()
        self.model.eval()
        gold: list[set[str]] = []
        predicted: list[set[str]] = []
        losses: list[float] = []
        order = sorted(range(len(self.eval_set)), key=lambda i: -self.eval_set.length(i))  # type: ignore[union-attr]
        for start in range(0, len(order), self.config.batch_size):
            examples = [
                self.eval_set.example(i, augment=False) for i in order[start : start + self.config.batch_size]
            ]
            batch = self.to_device(self.collator(examples))
            out = self.forward(batch)
            losses.append(float(out.loss))
            logits = out.logits.float()
            for row, example, mask in zip(logits, examples, out.label_mask, strict=True):
                names = example.request.labels[: int(mask.sum())]
                scores = row[: len(names)]
                # Gold comes from every candidate of the example, shown to the model or not.
                every = example.request.labels
                if self.multi_label:
                    predicted.append(
                        {n for n, s in zip(names, torch.sigmoid(scores).tolist(), strict=True) if s >= 0.5}
                    )
                    gold.append({n for n, t in zip(every, example.targets, strict=True) if t >= 0.5})
                else:
                    predicted.append({names[int(scores.argmax())]})
                    best = max(example.targets, default=0.0)
                    gold.append({every[example.targets.index(best)]} if best > 0 else set())
        self.model.train()
        torch.set_rng_state(rng)
        labels = {label for record in self.eval_set.records for label in record.all_labels}
        metrics = f1_scores(gold, predicted, labels)
        metrics["loss"] = sum(losses) / len(losses)
        return metrics

    def _evaluate_and_track(self) -> None:
        metrics = self.evaluate()
        metrics["step"] = self.step
        self.last_eval = metrics
        self.log({"step": self.step, **{f"eval_{k}": v for k, v in metrics.items() if k != "step"}})
        name = self.config.metric_for_best
        value = metrics[name]
        sign = -1 if name in LOWER_IS_BETTER else 1
        if self.best_metric is None or sign * value > sign * self.best_metric:
            self.best_metric, self.best_step = value, self.step
            partial = self.output_dir / f".partial-{checkpoints.BEST}"
            shutil.rmtree(partial, ignore_errors=True)
            export_model(self.model, self.tokenizer, partial)
            checkpoints.replace_folder(partial, self.output_dir / checkpoints.BEST)

    # -- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Everything needed to continue exactly: weights, optimizer, scheduler, RNG, data position."""
        folder = self.output_dir / f"checkpoint-{self.step}"
        partial = self.output_dir / f".partial-checkpoint-{self.step}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        save_file(_unshare(state), str(partial / "model_state.safetensors"))
        torch.save(self.optimizer.state_dict(), partial / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), partial / "scheduler.pt")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
        torch.save(rng, partial / "rng.pt")
        if self.scaler is not None:
            torch.save(self.scaler.state_dict(), partial / "scaler.pt")
        self.save_extra_state(partial)
        checkpoints.snapshot_best(self.output_dir, partial)
        trainer_state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "config": asdict(self.config),
            "data_fingerprint": self.data_fingerprint,
        }
        (partial / checkpoints.STATE_FILE).write_text(json.dumps(trainer_state, indent=2))
        # A killed save never leaves a half-written checkpoint behind.
        checkpoints.replace_folder(partial, folder)
        checkpoints.prune_checkpoints(self.output_dir, self.config.keep_checkpoints)
        return folder

    def save_extra_state(self, folder: Path) -> None:
        """Hook for subclasses with more state (the PPO value model)."""

    def load_extra_state(self, folder: Path) -> None:
        """Hook for subclasses with more state (the PPO value model)."""

    def load(self, path: Path) -> Any:
        """A `torch.save` file of a checkpoint, onto this run's device (a CUDA checkpoint resumes on CPU)."""
        return torch.load(path, weights_only=True, map_location=self.device)

    def load_checkpoint(self, folder: Path, force: bool = False) -> None:
        """Continue from `folder`; a checkpoint of another config or data is refused unless `force`."""
        trainer_state = json.loads((folder / checkpoints.STATE_FILE).read_text())
        if not force:
            checkpoints.check_resumable(trainer_state, asdict(self.config), self.data_fingerprint, folder)
        state = load_file(str(folder / "model_state.safetensors"), device=str(self.device))
        self.model.load_state_dict(state, strict=True)
        self.optimizer.load_state_dict(self.load(folder / "optimizer.pt"))
        self.scheduler.load_state_dict(self.load(folder / "scheduler.pt"))
        rng = torch.load(folder / "rng.pt", weights_only=True, map_location="cpu")
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(list(rng["cuda"]))
        if self.scaler is not None and (folder / "scaler.pt").exists():
            self.scaler.load_state_dict(self.load(folder / "scaler.pt"))
        self.load_extra_state(folder)
        checkpoints.restore_best(self.output_dir, folder)
        self.step = trainer_state["step"]
        self.epoch = trainer_state["epoch"]
        self.batch_in_epoch = trainer_state["batch_in_epoch"]
        self.best_metric = trainer_state["best_metric"]
        self.best_step = trainer_state["best_step"]

    def checkpoints(self) -> list[Path]:
        return checkpoints.list_checkpoints(self.output_dir)

    def _progress(self) -> Any:
        show = self.config.progress if self.config.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total_steps, initial=self.step, unit="step", desc="train")


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory; give each entry its own storage."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        pointer = value.untyped_storage().data_ptr()
        out[key] = value.clone() if pointer in seen else value
        seen.add(pointer)
    return out
