"""The GLiClass configuration, compatible with the `config.json` of published GLiClass checkpoints.

Every key of the official format is read and written with the official default; keys this
version does not know (from newer checkpoints) are kept on the object and written back unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal, get_args

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto import CONFIG_MAPPING

from .errors import ConfigError

ArchitectureType = Literal[
    "uni-encoder", "bi-encoder", "bi-encoder-fused", "encoder-decoder", "encoder-decoder-cls", "decoder-kv"
]
PoolingStrategy = Literal["first", "last", "avg", "sum", "max", "rms", "abs_max", "abs_avg", "pass"]
ClassTokenPooling = Literal["first", "average"]
ScorerType = Literal["simple", "weighted-dot", "mlp", "hopfield", "cross-attn", "decoder-kv"]
ProblemType = Literal["single_label_classification", "multi_label_classification"]
FocalReduction = Literal["mean", "sum"]

# Architectures this version can build; the others are valid config values that get a clear error.
SUPPORTED_ARCHITECTURES: Final = (
    "uni-encoder",
    "bi-encoder",
    "bi-encoder-fused",
    "encoder-decoder",
    "encoder-decoder-cls",
    "decoder-kv",
)
# Architectures with a separate label encoder (`label_model_name`, `label_model_config`).
BI_ENCODERS: Final = ("bi-encoder", "bi-encoder-fused")
# Architectures on an encoder-decoder backbone (T5, mT5, UMT5): the text and the labels are two
# sequences, one for the encoder and one for the decoder.
ENCODER_DECODERS: Final = ("encoder-decoder", "encoder-decoder-cls")
# The decoder backbones of the decoder-kv architecture (its scorer reads their last hidden states).
DECODER_KV_BACKBONES: Final = ("qwen3", "qwen3_5_text", "embedding_gemma2_text")

CONFIG_FORMAT_VERSION: Final = 1

_CHOICES: Final[dict[str, tuple[Any, ...]]] = {
    "architecture_type": get_args(ArchitectureType),
    "pooling_strategy": get_args(PoolingStrategy),
    "class_token_pooling": get_args(ClassTokenPooling),
    "scorer_type": get_args(ScorerType),
    "problem_type": get_args(ProblemType),
    "focal_loss_reduction": (None, *get_args(FocalReduction)),
}


BLEND_KEYS: Final = ("model", "template", "weight", "offset", "scale")
BLEND_OPTIONAL_KEYS: Final = ("background",)


def _validate_blend(blend: Any) -> None:
    """`embedding_blend`: {"model", "template" (with {label}), "weight" >= 0, "offset", "scale" > 0},
    optionally "background": a non-empty list of label names."""
    if (
        not isinstance(blend, dict)
        or not set(BLEND_KEYS) <= set(blend)
        or not set(blend) <= {*BLEND_KEYS, *BLEND_OPTIONAL_KEYS}
    ):
        keys = ", ".join(BLEND_KEYS)
        raise ConfigError(
            f"embedding_blend: {blend!r} must be null or a dict with keys {keys} (and optionally background)"
        )
    background = blend.get("background")
    if background is not None and (
        not isinstance(background, list)
        or not background
        or not all(isinstance(label, str) and label.strip() for label in background)
    ):
        raise ConfigError(
            f"embedding_blend.background: {background!r} must be a non-empty list of label names"
        )
    if not isinstance(blend["model"], str) or not blend["model"]:
        raise ConfigError(f"embedding_blend.model: {blend['model']!r} must be a model name or path")
    if not isinstance(blend["template"], str) or "{label}" not in blend["template"]:
        raise ConfigError(f"embedding_blend.template: {blend['template']!r} must contain {{label}}")
    for key in ("weight", "offset", "scale"):
        value = blend[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"embedding_blend.{key}: {value!r} must be a finite number")
    if blend["weight"] < 0:
        raise ConfigError(f"embedding_blend.weight: {blend['weight']!r} must be >= 0")
    if blend["scale"] <= 0:
        raise ConfigError(f"embedding_blend.scale: {blend['scale']!r} must be > 0")


def _check_label_template(template: Any) -> None:
    """`label_template`: null, or a string holding "{label}" exactly once."""
    if template is not None and (not isinstance(template, str) or template.count("{label}") != 1):
        raise ConfigError(f"label_template: {template!r} must be null or a string with {{label}} once")


def _backbone_config(value: Any, name_or_path: str | None) -> PretrainedConfig:
    """Turn the stored `encoder_config` (a dict, a config, or None) into a backbone config object."""
    if isinstance(value, PretrainedConfig):
        return value
    if value is None:
        if name_or_path:
            return AutoConfig.from_pretrained(name_or_path)
        return CONFIG_MAPPING["deberta-v2"]()  # the official default backbone
    if isinstance(value, dict):
        model_type = value.get("model_type", "deberta-v2")
        if model_type not in CONFIG_MAPPING:
            raise ConfigError(
                f"encoder_config.model_type: {model_type!r} is not a model type known to transformers"
            )
        fields = {k: v for k, v in value.items() if k != "model_type"}
        return CONFIG_MAPPING[model_type](**fields)
    raise ConfigError(f"encoder_config: expected a dict or a PretrainedConfig, got {type(value).__name__}")


class GLiClassConfig(PretrainedConfig):
    """Configuration of a GLiClass model (`model_type` "GLiClass").

    `encoder_config` is the full nested backbone config. Token indices of -1 mean "append after
    the backbone vocabulary" (vocab_size, vocab_size + 1, vocab_size + 2), as in the official format.
    """

    model_type = "GLiClass"
    is_composition = True

    def __init__(
        self,
        encoder_config: dict[str, Any] | PretrainedConfig | None = None,
        encoder_model: str | None = None,
        label_model_config: dict[str, Any] | PretrainedConfig | None = None,
        label_model_name: str | None = None,
        class_token_index: int = -1,
        text_token_index: int = -1,
        example_token_index: int = -1,
        ignore_index: int = -100,
        hidden_size: int | None = None,
        projector_hidden_act: str = "gelu",
        vocab_size: int | None = None,
        problem_type: str = "single_label_classification",
        max_num_classes: int = 25,
        use_lstm: bool = False,
        initializer_range: float = 0.03,
        scorer_type: str = "simple",
        scorer_num_heads: int = 16,
        scorer_mlp_hidden_size: int = 1024,
        scorer_attn_dropout: float = 0.1,
        pooling_strategy: str = "first",
        class_token_pooling: str = "first",
        focal_loss_alpha: float = 0.5,
        focal_loss_gamma: float = 2,
        focal_loss_reduction: str | None = None,
        logit_scale_init_value: float = 2.6592,
        normalize_features: bool = False,
        extract_text_features: bool = False,
        max_labels_alloc: str | int = "dynamic",
        contrastive_loss_coef: float = 0,
        architecture_type: str = "uni-encoder",
        prompt_first: bool = False,
        squeeze_layers: bool = False,
        layer_wise: bool = False,
        encoder_layer_id: int = -1,
        embed_class_token: bool = True,
        dropout: float = 0.1,
        use_segment_embeddings: bool = False,
        label_smoothing: float = 0.0,
        mask_padding: bool | None = None,
        pool_text_before_examples: bool = False,
        embedding_blend: dict[str, Any] | None = None,
        label_template: str | None = None,
        use_calibrator: bool = False,
        calibrator_hidden_size: int = 256,
        calibrator_beta_max: float = 3.0,
        calibrator_dropout: float = 0.1,
        calibrator_use_bias: bool = False,
        scorer_encoder_num_layers: int = 2,
        scorer_full_sequence: bool = False,
        recurrent_steps: int = 1,
        recurrent_min_steps: int = 1,
        recurrent_inference: bool = True,
        recurrent_inference_max_steps: int | None = None,
        recurrent_halt_threshold: float | None = 0.01,
        recurrent_improvement_coef: float = 0.1,
        recurrent_improvement_margin: float = 0.05,
        recurrent_bptt_steps: int | None = None,
        recurrent_read_text: bool = False,
        recurrent_confidence_coef: float = 0.0,
        recurrent_confidence_mode: str = "relative",
        recurrent_confidence_margin: float = 0.0,
        use_embedding_projection: bool | None = None,
        **kwargs: Any,
    ) -> None:
        # The official config writes the backbone name under "encoder_model_name" but reads "encoder_model".
        encoder_model = encoder_model or kwargs.pop("encoder_model_name", None)
        kwargs.pop("pad_token_id", None)  # always derived from the backbone below
        self.encoder_config = _backbone_config(encoder_config, encoder_model)
        self.encoder_model_name = encoder_model

        if label_model_name is not None:
            label_config = label_model_config if label_model_config is not None else {}
            self.label_model_config: PretrainedConfig | None = _backbone_config(label_config, None)
        else:
            self.label_model_config = None
        self.label_model_name = label_model_name

        text_config = self.encoder_config.get_text_config()
        # decoder-kv on EmbeddingGemma 2: whether the scorer reads the backbone's embedding_projection
        # (hidden -> embedding_dim) or its final-norm states; official rule: kept only by older
        # checkpoints whose hidden_size is the embedding_dim.
        gemma = text_config.model_type == "embedding_gemma2_text"
        if use_embedding_projection is None:
            use_embedding_projection = gemma and hidden_size == getattr(text_config, "embedding_dim", None)
        self.use_embedding_projection = use_embedding_projection
        if hidden_size is None:
            hidden_size = (
                text_config.embedding_dim if gemma and use_embedding_projection else text_config.hidden_size
            )
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size if vocab_size is not None else text_config.vocab_size
        self.class_token_index = class_token_index if class_token_index != -1 else self.vocab_size
        self.text_token_index = text_token_index if text_token_index != -1 else self.vocab_size + 1
        self.example_token_index = example_token_index if example_token_index != -1 else self.vocab_size + 2

        self.ignore_index = ignore_index
        self.projector_hidden_act = projector_hidden_act
        self.max_num_classes = max_num_classes
        self.use_lstm = use_lstm
        self.initializer_range = initializer_range
        self.scorer_type = scorer_type
        self.scorer_num_heads = scorer_num_heads
        self.scorer_mlp_hidden_size = scorer_mlp_hidden_size
        self.scorer_attn_dropout = scorer_attn_dropout
        self.pooling_strategy = pooling_strategy
        self.class_token_pooling = class_token_pooling
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.focal_loss_reduction = focal_loss_reduction
        self.logit_scale_init_value = logit_scale_init_value
        self.normalize_features = normalize_features
        self.extract_text_features = extract_text_features
        self.max_labels_alloc = max_labels_alloc
        self.contrastive_loss_coef = contrastive_loss_coef
        self.architecture_type = architecture_type
        self.prompt_first = prompt_first
        self.squeeze_layers = squeeze_layers
        self.layer_wise = layer_wise
        self.encoder_layer_id = encoder_layer_id
        self.embed_class_token = embed_class_token
        self.dropout = dropout
        self.use_segment_embeddings = use_segment_embeddings
        self.label_smoothing = label_smoothing  # everylabel extension: smoothing for the focal loss
        # everylabel extension: how the text was pooled in training (True: real tokens only, False:
        # padding included as in the official poolers); None when not recorded (official checkpoints).
        self.mask_padding = mask_padding
        # everylabel extension: pool the text vector over the text (and prompt) only, not over the
        # in-context examples that follow it; they still reach the text through attention. False
        # (the official models): the examples are pooled with the text and, being longer, swamp it.
        self.pool_text_before_examples = pool_text_before_examples
        # everylabel extension: add a sentence-embedding similarity to the logits at inference
        # (`inference/embedding_blend.py`); keys model, template, weight, offset, scale, optionally
        # background (fixed labels to centre on). None: no blend.
        self.embedding_blend = embedding_blend
        # everylabel extension: the sentence each label is read in, "{label}" standing for the label
        # (with its description, "name: description", where descriptions go to the label), as the
        # model was trained: "This article is about {label}." None: the label as given.
        self.label_template = label_template
        # The official learned calibrator (`modeling/calibrator.py`): per (text, label) pair an
        # inverse temperature in (0, calibrator_beta_max) and, with calibrator_use_bias, a bias.
        self.use_calibrator = use_calibrator
        self.calibrator_hidden_size = calibrator_hidden_size
        self.calibrator_beta_max = calibrator_beta_max
        self.calibrator_dropout = calibrator_dropout
        self.calibrator_use_bias = calibrator_use_bias
        # decoder-kv (modeling/decoder_kv.py): the scorer's own bidirectional encoder, and recurrent
        # reasoning over it (recurrent_steps 1: none). Training samples a depth in
        # [recurrent_min_steps, recurrent_steps]; inference runs up to recurrent_inference_max_steps
        # (default recurrent_steps) and stops a text once no label probability moves by
        # recurrent_halt_threshold (None or 0: never). Official keys and defaults.
        self.scorer_encoder_num_layers = scorer_encoder_num_layers
        self.scorer_full_sequence = scorer_full_sequence  # recorded by the official format, never read
        self.recurrent_steps = recurrent_steps
        self.recurrent_min_steps = recurrent_min_steps
        self.recurrent_inference = recurrent_inference
        self.recurrent_inference_max_steps = recurrent_inference_max_steps
        self.recurrent_halt_threshold = recurrent_halt_threshold
        self.recurrent_improvement_coef = recurrent_improvement_coef
        self.recurrent_improvement_margin = recurrent_improvement_margin
        self.recurrent_bptt_steps = recurrent_bptt_steps
        self.recurrent_read_text = recurrent_read_text
        self.recurrent_confidence_coef = recurrent_confidence_coef
        self.recurrent_confidence_mode = recurrent_confidence_mode
        self.recurrent_confidence_margin = recurrent_confidence_margin
        self.everylabel_config_version = kwargs.pop("everylabel_config_version", CONFIG_FORMAT_VERSION)
        kwargs.update(problem_type=problem_type, pad_token_id=text_config.pad_token_id)
        super().__init__(**kwargs)
        self.validate()

    @property
    def encoder_hidden_size(self) -> int:
        """Width of the backbone's hidden states (the projectors map back to this width)."""
        return int(self.encoder_config.get_text_config().hidden_size)

    @property
    def is_bi_encoder(self) -> bool:
        """A text encoder and a separate label encoder (`bi-encoder`, `bi-encoder-fused`)."""
        return self.architecture_type in BI_ENCODERS

    @property
    def uses_encoder_decoder(self) -> bool:
        """Text and labels in two sequences of an encoder-decoder backbone (see `ENCODER_DECODERS`)."""
        return self.architecture_type in ENCODER_DECODERS

    @property
    def uses_label_tokens(self) -> bool:
        """Whether the text input carries `<<LABEL>>` markers (all but the plain bi-encoder)."""
        return self.architecture_type != "bi-encoder"

    @property
    def label_hidden_size(self) -> int:
        """Width of the label encoder's hidden states (bi-encoders only)."""
        assert self.label_model_config is not None
        return int(self.label_model_config.get_text_config().hidden_size)

    @property
    def num_encoder_layers(self) -> int:
        return int(self.encoder_config.get_text_config().num_hidden_layers)

    def validate(self) -> None:
        """Raise `ConfigError` naming the key and the allowed values for the first bad value."""
        for key, allowed in _CHOICES.items():
            value = getattr(self, key)
            if value not in allowed:
                shown = ", ".join(repr(a) for a in allowed)
                raise ConfigError(f"{key}: {value!r} is not one of {shown}")
        alloc = self.max_labels_alloc
        if not (alloc in ("dynamic", "fixed") or (isinstance(alloc, int) and alloc > 0)):
            raise ConfigError(f"max_labels_alloc: {alloc!r} must be 'dynamic', 'fixed' or a positive int")
        for key in (
            "hidden_size",
            "max_num_classes",
            "scorer_num_heads",
            "scorer_mlp_hidden_size",
            "calibrator_hidden_size",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{key}: {value!r} must be a positive int")
        for key in ("dropout", "scorer_attn_dropout", "label_smoothing", "calibrator_dropout"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{key}: {value!r} must be in [0, 1)")
        for key in ("use_calibrator", "calibrator_use_bias"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: {getattr(self, key)!r} must be true or false")
        beta_max = self.calibrator_beta_max
        if isinstance(beta_max, bool) or not isinstance(beta_max, int | float) or not 0 < beta_max < math.inf:
            raise ConfigError(f"calibrator_beta_max: {beta_max!r} must be a finite number > 0")
        if self.use_calibrator and self.pooling_strategy == "pass":
            raise ConfigError(
                "use_calibrator: the calibrator reads one pooled text vector; pooling_strategy 'pass' "
                "keeps every token"
            )
        if not isinstance(self.pool_text_before_examples, bool):
            raise ConfigError(
                f"pool_text_before_examples: {self.pool_text_before_examples!r} must be true or false"
            )
        if self.mask_padding is not None and not isinstance(self.mask_padding, bool):
            raise ConfigError(f"mask_padding: {self.mask_padding!r} must be true, false or null")
        if self.embedding_blend is not None:
            _validate_blend(self.embedding_blend)
        _check_label_template(self.label_template)
        if self.contrastive_loss_coef < 0:
            raise ConfigError(f"contrastive_loss_coef: {self.contrastive_loss_coef!r} must be >= 0")
        n_states = self.num_encoder_layers + 1  # embedding output + one per layer
        if not -n_states <= self.encoder_layer_id < n_states:
            raise ConfigError(
                f"encoder_layer_id: {self.encoder_layer_id} is out of range for a backbone with "
                f"{self.num_encoder_layers} layers (allowed {-n_states}..{n_states - 1})"
            )
        # The "pass" pooling keeps every token; only the cross-attention scorer reads a sequence.
        if (self.pooling_strategy == "pass") != (self.scorer_type == "cross-attn"):
            raise ConfigError(
                f"pooling_strategy: {self.pooling_strategy!r} with scorer_type {self.scorer_type!r}; "
                "'pass' pooling and the 'cross-attn' scorer only work together"
            )
        if self.scorer_type == "cross-attn" and self.hidden_size % self.scorer_num_heads:
            raise ConfigError(
                f"scorer_num_heads: {self.scorer_num_heads} must divide hidden_size {self.hidden_size}"
            )
        # These parts are sized by hidden_size but read the backbone's hidden states.
        needs_equal = self.use_lstm or self.scorer_type != "simple"
        if needs_equal and self.hidden_size != self.encoder_hidden_size:
            raise ConfigError(
                f"hidden_size: {self.hidden_size} must equal the backbone hidden size "
                f"{self.encoder_hidden_size} when use_lstm is set or scorer_type is {self.scorer_type!r}"
            )
        if self.use_lstm and self.hidden_size % 2:
            raise ConfigError(f"hidden_size: {self.hidden_size} must be even for the bidirectional LSTM")
        if self.squeeze_layers and self.num_encoder_layers < 2:
            raise ConfigError("squeeze_layers: needs a backbone with at least 2 layers")
        if self.is_bi_encoder:
            self._validate_bi_encoder()
        if self.uses_encoder_decoder:
            self._validate_encoder_decoder()
        if self.architecture_type == "decoder-kv":
            self._validate_decoder_kv()
        elif self.scorer_type == "decoder-kv":
            raise ConfigError(
                f"scorer_type: 'decoder-kv' is the decoder-kv architecture's own scorer, not one for "
                f"{self.architecture_type!r}"
            )

    def _validate_decoder_kv(self) -> None:
        if getattr(self, "multimodal", False):
            raise ConfigError(
                "multimodal: decoder-kv with images or audio (the whole Qwen3.5, Gemma 4 or EmbeddingGemma 2 "
                "model) is not supported; text-only checkpoints are"
            )
        backbone = self.encoder_config.get_text_config()
        if backbone.model_type not in DECODER_KV_BACKBONES:
            raise ConfigError(
                f"encoder_config: 'decoder-kv' runs on a decoder backbone "
                f"({', '.join(DECODER_KV_BACKBONES)}), not {backbone.model_type!r}"
            )
        width = backbone.embedding_dim if self.use_embedding_projection else backbone.hidden_size
        if self.hidden_size != width:
            raise ConfigError(
                f"hidden_size: {self.hidden_size} must equal the width of the decoder's states, {width}: "
                "the decoder-kv scorer reads them directly"
            )
        for key in ("scorer_encoder_num_layers", "recurrent_steps", "recurrent_min_steps"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key}: {value!r} must be an int >= 1")
        steps = self.recurrent_inference_max_steps
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise ConfigError(f"recurrent_inference_max_steps: {steps!r} must be null or an int >= 1")
        if self.recurrent_confidence_mode not in ("relative", "absolute"):
            raise ConfigError(
                f"recurrent_confidence_mode: {self.recurrent_confidence_mode!r} is not one of "
                "'relative', 'absolute'"
            )

    @property
    def sep_id(self) -> int:
        """The `<<SEP>>` id the decoder-kv layout closes the text and the labels with: the official
        `sep_token_index` where the checkpoint records it, else `text_token_index`."""
        return int(getattr(self, "sep_token_index", None) or self.text_token_index)

    def _validate_encoder_decoder(self) -> None:
        if not getattr(self.encoder_config, "is_encoder_decoder", False):
            raise ConfigError(
                f"encoder_config: architecture_type {self.architecture_type!r} needs an encoder-decoder "
                f"backbone (T5, mT5, UMT5), not {self.encoder_config.model_type!r}"
            )
        if self.architecture_type == "encoder-decoder-cls" and self.pooling_strategy == "pass":
            raise ConfigError(
                "pooling_strategy: 'encoder-decoder-cls' reads the text at its last token; 'pass' keeps "
                "every token"
            )
        if self.use_segment_embeddings:
            raise ConfigError(
                f"use_segment_embeddings: the {self.architecture_type} reads text and labels apart; "
                "segment embeddings mark them within one sequence"
            )

    def _validate_bi_encoder(self) -> None:
        if self.label_model_config is None:
            raise ConfigError(
                f"label_model_name: architecture_type {self.architecture_type!r} needs a label encoder "
                "(label_model_name and label_model_config)"
            )
        if self.pooling_strategy == "pass":
            raise ConfigError(
                f"pooling_strategy: 'pass' keeps every token; the {self.architecture_type} scores one "
                "pooled text vector"
            )
        text = self.encoder_config.get_text_config()
        embedding_width = getattr(text, "embedding_size", None) or text.hidden_size
        if self.architecture_type == "bi-encoder-fused" and embedding_width != text.hidden_size:
            raise ConfigError(
                f"architecture_type: 'bi-encoder-fused' puts label vectors into the text encoder's input "
                f"embeddings, which are {embedding_width} wide, not its hidden size {text.hidden_size} "
                f"({text.model_type}); use 'bi-encoder'"
            )

    def pooling_mask_padding(self, default: bool) -> bool:
        """Whether to pool over real tokens only: as recorded in training, else `default`."""
        return default if self.mask_padding is None else bool(self.mask_padding)

    def special_token_ids(self) -> tuple[int, int, int]:
        """(label, sep, example) token ids."""
        return self.class_token_index, self.text_token_index, self.example_token_index
