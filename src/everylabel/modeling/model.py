"""`GLiClassModel`: the checkpoint-compatible model (config.json + model.safetensors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput

from ..config import SUPPORTED_ARCHITECTURES, GLiClassConfig
from ..errors import ConfigError, NotSupportedError
from .bi_encoder import BiEncoder
from .calibrator import Calibrator, CalibratorOutput, build_calibrator, calibrate
from .decoder_kv import DecoderKV
from .encoder_decoder import EncoderDecoder
from .head_modules import HeadModules
from .uni_encoder import UniEncoder


@dataclass
class GLiClassOutput(ModelOutput):
    """Model outputs. `logits` is (batch, num_slots); slots past a row's label count are padding.

    With a calibrator, `logits` = inverse_temperatures * uncalibrated_logits + calibration_biases
    (all (batch, num_slots)); without one the three are None. The loss is on the uncalibrated logits.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    label_mask: torch.Tensor | None = None  # (batch, num_slots), True for real labels
    text_embeddings: torch.Tensor | None = None
    class_embeddings: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    uncalibrated_logits: torch.Tensor | None = None
    inverse_temperatures: torch.Tensor | None = None
    calibration_biases: torch.Tensor | None = None


class GLiClassPreTrainedModel(PreTrainedModel):
    config_class = GLiClassConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        """Head initialisation of the official format: normal(0, initializer_range), zero biases."""
        std = self.config.initializer_range
        if isinstance(module, CalibratorOutput):  # a new calibrator is the identity: beta 1, bias 0
            init.zeros_(module.weight)
            init.copy_(module.bias, module.global_scaling_bias(1.0))
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if name.startswith("weight"):
                    init.normal_(param, mean=0.0, std=std)
                else:
                    init.zeros_(param)
        elif isinstance(module, HeadModules):
            init.constant_(module.logit_scale, float(self.config.logit_scale_init_value))


class GLiClassModel(GLiClassPreTrainedModel):
    """A GLiClass model. `forward` scores every label marked by `<<LABEL>>` in each row.

    Load a published checkpoint with `GLiClassModel.from_pretrained(path_or_hub_id)`; create a new
    model for training with `everylabel.create_model(backbone)`.
    """

    def __init__(
        self,
        config: GLiClassConfig,
        backbone: PreTrainedModel | None = None,
        label_backbone: PreTrainedModel | None = None,
    ) -> None:
        super().__init__(config)
        if config.architecture_type not in SUPPORTED_ARCHITECTURES:
            raise NotSupportedError(
                f"architecture_type: {config.architecture_type!r} is not supported yet "
                f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
            )
        self.model: UniEncoder | BiEncoder | EncoderDecoder | DecoderKV
        if config.is_bi_encoder:
            self.model = BiEncoder(config, backbone, label_backbone)
        elif config.uses_encoder_decoder:
            self.model = EncoderDecoder(config, backbone)
        elif config.architecture_type == "decoder-kv":
            self.model = DecoderKV(config, backbone)
        else:
            self.model = UniEncoder(config, backbone)
        # Beside `model`, as in the official state dict (`calibrator.*`).
        self.calibrator: Calibrator | None = build_calibrator(config) if config.use_calibrator else None
        self.post_init()

    def add_calibrator(
        self,
        hidden_size: int | None = None,
        beta_max: float | None = None,
        dropout: float | None = None,
        use_bias: bool | None = None,
    ) -> Calibrator:
        """Attach a new calibrator (beta 1, bias 0: the identity) and record it in the config.

        Unset options keep the config's values. Fitting it is up to the caller (the official
        package fits it with the backbone frozen, on held-out data).
        """
        updates = {
            "calibrator_hidden_size": hidden_size,
            "calibrator_beta_max": beta_max,
            "calibrator_dropout": dropout,
            "calibrator_use_bias": use_bias,
        }
        config = cast(GLiClassConfig, self.config)
        previous = {key: getattr(config, key) for key in (*updates, "use_calibrator")}
        for key, value in updates.items():
            if value is not None:
                setattr(config, key, value)
        config.use_calibrator = True
        try:
            config.validate()
        except ConfigError:
            for key, value in previous.items():
                setattr(config, key, value)
            raise
        device = next(self.model.parameters()).device
        self.calibrator = build_calibrator(config).to(device)
        self.calibrator.train(self.training)
        return self.calibrator

    def remove_calibrator(self) -> None:
        """Drop the calibrator: logits are the uncalibrated ones again."""
        self.config.use_calibrator = False
        self.calibrator = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """Load from a local folder or a hub id. Weights come from safetensors, or from a `.bin`
        file read with `torch.load(weights_only=True)`: never arbitrary unpickling."""
        if kwargs.get("weights_only") is False:
            raise ValueError("weights_only: everylabel never unpickles arbitrary objects; it must stay True")
        kwargs["weights_only"] = True
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        dtype = kwargs.get("dtype")
        if isinstance(dtype, torch.dtype):  # the nested backbone keeps its own dtype otherwise
            model: nn.Module = loaded[0] if isinstance(loaded, tuple) else loaded
            model.to(dtype=dtype)
        return loaded

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        """The backbones' tied weights too (T5 ties its encoder and decoder token embeddings to
        `shared`, which checkpoints store once): transformers reads only the top model's otherwise,
        and the untied copies would be left random at loading."""
        tied = super().get_expanded_tied_weights_keys(all_submodels=False)
        for prefix, module in self.named_modules():
            if prefix and isinstance(module, PreTrainedModel):
                inner = module.get_expanded_tied_weights_keys(all_submodels=False)
                tied.update({f"{prefix}.{k}": f"{prefix}.{v}" for k, v in inner.items()})
        return tied

    @property
    def backbone_name(self) -> str:
        """The attribute of `self.model` that holds the backbone (its state-dict prefix)."""
        if isinstance(self.model, DecoderKV):
            return "decoder_model"
        return "encoder_decoder_model" if isinstance(self.model, EncoderDecoder) else "encoder_model"

    @property
    def encoder(self) -> PreTrainedModel:
        """The backbone (the whole encoder-decoder model for the encoder-decoder architectures)."""
        return cast(PreTrainedModel, getattr(self.model, self.backbone_name))

    @property
    def label_encoder(self) -> PreTrainedModel | None:
        """The bi-encoders' label encoder (None for the uni-encoder)."""
        return self.model.label_encoder if isinstance(self.model, BiEncoder) else None

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, *args: Any, **kwargs: Any
    ) -> nn.Embedding:
        embeddings = self.encoder.resize_token_embeddings(new_num_tokens, *args, **kwargs)
        size = embeddings.num_embeddings
        self.config.encoder_config.get_text_config().vocab_size = size
        self.config.vocab_size = size
        return embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        max_num_classes: int | None = None,
        output_hidden_states: bool = False,
        output_text_embeddings: bool = False,
        output_class_embeddings: bool = False,
        mask_padding: bool | None = None,
        label_input_ids: torch.Tensor | None = None,
        label_attention_mask: torch.Tensor | None = None,
        label_index: torch.Tensor | None = None,
        label_embeddings: torch.Tensor | None = None,
        class_input_ids: torch.Tensor | None = None,
        class_attention_mask: torch.Tensor | None = None,
        labels_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> GLiClassOutput:
        """Score the labels of each row.

        input_ids, attention_mask: (batch, seq). labels: multi-label targets (batch, num_slots) in
        [0, 1] with `ignore_index` for slots to skip; single-label class indices (batch,) or
        one-hot / soft targets (batch, num_slots). max_num_classes: label slots in the logits
        (default from `config.max_labels_alloc`; "dynamic" = the most labels in any row).
        mask_padding: pool over real tokens only (True) or with padding as the official model does
        (False); default: as the config records it from training, else False (the official logits).
        With a calibrator, `logits` are calibrated from the text and label vectors and the
        uncalibrated logits (see `GLiClassOutput`), as the official model does after its head.

        Bi-encoders also take their labels, in one of three forms: `label_input_ids` and
        `label_attention_mask` (labels, label_seq), the distinct labels tokenised by the label
        tokenizer; or `label_embeddings` (labels, hidden) from `encode_labels`; either with
        `label_index` (batch, num_slots), the label row of each slot (-1: padding; default: every
        label for every row). Or the official layout: `class_input_ids`, `class_attention_mask`
        (batch, num_slots, label_seq) and `labels_mask` (batch, num_slots).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if mask_padding is None:
            mask_padding = self.config.pooling_mask_padding(default=False)
        if isinstance(self.model, BiEncoder):
            vectors, label_index = self._label_vectors(
                mask_padding,
                label_input_ids,
                label_attention_mask,
                label_index,
                label_embeddings,
                class_input_ids,
                class_attention_mask,
                labels_mask,
            )
            # The calibrator reads every slot's label vector.
            keep_label_vectors = (
                output_class_embeddings or output_hidden_states or self.calibrator is not None
            )
            if label_index is None:  # every label for every row
                rows = len(input_ids)
                label_index = torch.arange(vectors.shape[0], device=input_ids.device).expand(rows, -1)
            out, loss, all_layers = self.model(
                input_ids,
                attention_mask,
                vectors,
                label_index,
                labels,
                output_hidden_states,
                mask_padding,
                keep_label_vectors=keep_label_vectors,
            )
        elif isinstance(self.model, EncoderDecoder):
            if class_input_ids is None:
                raise ValueError(
                    f"class_input_ids: the {self.config.architecture_type} reads its labels as a second "
                    "sequence (class_input_ids, class_attention_mask)"
                )
            if class_attention_mask is None:
                class_attention_mask = torch.ones_like(class_input_ids)
            out, loss, all_layers = self.model(
                input_ids,
                attention_mask,
                class_input_ids,
                class_attention_mask,
                labels,
                max_num_classes,
                keep_layers=output_hidden_states,
                mask_padding=mask_padding,
            )
        elif isinstance(self.model, DecoderKV):
            out, loss, all_layers = self.model(
                input_ids, attention_mask, labels, max_num_classes, output_hidden_states, mask_padding
            )
        else:
            if any(x is not None for x in (label_input_ids, label_embeddings, class_input_ids)):
                raise NotSupportedError("label inputs: the uni-encoder reads its labels from input_ids")
            out, loss, all_layers = self.model(
                input_ids,
                attention_mask,
                labels,
                max_num_classes,
                keep_layers=output_hidden_states,
                mask_padding=mask_padding,
            )
        logits, beta, bias = out.logits, None, None
        if self.calibrator is not None:
            beta, bias = self.calibrator(out.text_vectors, out.label_vectors, out.logits, out.label_mask)
            logits = calibrate(out.logits, beta, bias)  # (batch, num_slots)
        return GLiClassOutput(
            loss=loss,
            logits=logits,
            label_mask=out.label_mask,
            text_embeddings=out.text_vectors if output_text_embeddings else None,
            class_embeddings=out.label_vectors if output_class_embeddings else None,
            hidden_states=all_layers if output_hidden_states else None,
            uncalibrated_logits=out.logits if beta is not None else None,
            inverse_temperatures=beta,
            calibration_biases=bias,
        )

    def _label_vectors(
        self,
        mask_padding: bool,
        label_input_ids: torch.Tensor | None,
        label_attention_mask: torch.Tensor | None,
        label_index: torch.Tensor | None,
        label_embeddings: torch.Tensor | None,
        class_input_ids: torch.Tensor | None,
        class_attention_mask: torch.Tensor | None,
        labels_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(labels, hidden) label vectors and the (batch, slots) index into them."""
        if label_embeddings is not None:
            return label_embeddings, label_index
        if class_input_ids is not None:  # official layout: every slot its own row
            batch, slots, _ = class_input_ids.shape
            if labels_mask is None:
                labels_mask = torch.ones(batch, slots, dtype=torch.long, device=class_input_ids.device)
            real = labels_mask.bool()  # (batch, slots)
            label_input_ids = class_input_ids[real]  # (labels, label_seq)
            label_attention_mask = (
                class_attention_mask[real]
                if class_attention_mask is not None
                else torch.ones_like(label_input_ids)
            )
            label_index = torch.where(real, real.flatten().cumsum(0).view(batch, slots) - 1, -1)
        if label_input_ids is None:
            raise ValueError(
                f"label_input_ids: the {self.config.architecture_type} needs its labels "
                "(label_input_ids, label_embeddings or class_input_ids)"
            )
        if label_attention_mask is None:
            label_attention_mask = torch.ones_like(label_input_ids)
        return self.encode_labels(label_input_ids, label_attention_mask, mask_padding), label_index

    def encode_labels(
        self,
        label_input_ids: torch.Tensor,
        label_attention_mask: torch.Tensor | None = None,
        mask_padding: bool | None = None,
    ) -> torch.Tensor:
        """(labels, label_seq) label token ids -> (labels, hidden) label vectors (bi-encoders).

        The vectors go back into `forward` as `label_embeddings`; `mask_padding` as in `forward`.
        """
        if not isinstance(self.model, BiEncoder):
            raise NotSupportedError("encode_labels: only bi-encoders encode labels apart from the text")
        if label_attention_mask is None:
            label_attention_mask = torch.ones_like(label_input_ids)
        if mask_padding is None:
            mask_padding = self.config.pooling_mask_padding(default=False)
        return self.model.label_vectors(label_input_ids, label_attention_mask, mask_padding)
