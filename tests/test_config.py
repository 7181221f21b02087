"""GLiClassConfig: official keys and defaults, validation, unknown keys kept, nested backbone config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gliclass.config import GLiClassModelConfig
from transformers import BertConfig

from everylabel import ConfigError, GLiClassConfig, GLiClassModel

# The keys of the official config.json that everylabel reads and writes.
OFFICIAL_KEYS = [
    "encoder_model_name", "label_model_name", "label_model_config", "class_token_index", "text_token_index",
    "example_token_index", "architecture_type", "prompt_first", "pooling_strategy", "class_token_pooling",
    "embed_class_token", "extract_text_features", "use_lstm", "hidden_size", "projector_hidden_act",
    "dropout",
    "scorer_type", "scorer_num_heads", "scorer_mlp_hidden_size", "scorer_attn_dropout",
    "normalize_features",
    "logit_scale_init_value", "squeeze_layers", "layer_wise", "encoder_layer_id", "use_segment_embeddings",
    "max_num_classes", "max_labels_alloc", "problem_type", "focal_loss_alpha", "focal_loss_gamma",
    "focal_loss_reduction", "contrastive_loss_coef", "initializer_range", "vocab_size", "pad_token_id",
    "ignore_index", "use_calibrator", "calibrator_hidden_size", "calibrator_beta_max", "calibrator_dropout",
    "calibrator_use_bias",
]  # fmt: skip


def tiny_bert() -> BertConfig:
    return BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )


def test_defaults_equal_the_official_defaults() -> None:
    ours = GLiClassConfig(encoder_config=tiny_bert()).to_dict()
    theirs = GLiClassModelConfig(encoder_config=tiny_bert()).to_dict()
    for key in OFFICIAL_KEYS:
        assert ours[key] == theirs[key], key
    assert ours["encoder_config"] == theirs["encoder_config"]


def test_token_indices_default_after_the_vocabulary() -> None:
    config = GLiClassConfig(encoder_config=tiny_bert())
    assert config.special_token_ids() == (100, 101, 102)
    assert config.hidden_size == 32 and config.pad_token_id == 0


def test_official_config_json_reads_and_writes_back(tmp_path: Path) -> None:
    official = GLiClassModelConfig(
        encoder_config=tiny_bert(), scorer_type="mlp", use_lstm=True, prompt_first=True
    )
    official.save_pretrained(tmp_path / "official")
    written = json.loads((tmp_path / "official" / "config.json").read_text())
    config = GLiClassConfig.from_pretrained(tmp_path / "official")
    config.save_pretrained(tmp_path / "ours")
    rewritten = json.loads((tmp_path / "ours" / "config.json").read_text())
    for key, value in written.items():
        if key in ("transformers_version",):
            continue
        assert rewritten[key] == value, key
    assert config.encoder_config.model_type == "bert"
    assert config.encoder_config.num_hidden_layers == 2


def test_unknown_keys_are_kept(tmp_path: Path) -> None:
    config = GLiClassConfig(encoder_config=tiny_bert(), some_future_option={"depth": 3}, recurrent_steps=4)
    config.save_pretrained(tmp_path)
    again = GLiClassConfig.from_pretrained(tmp_path)
    assert again.some_future_option == {"depth": 3}
    assert again.recurrent_steps == 4


def test_nested_encoder_config_from_a_dict() -> None:
    config = GLiClassConfig(encoder_config=tiny_bert().to_dict())
    assert isinstance(config.encoder_config, BertConfig)
    assert config.encoder_config.hidden_size == 32


BAD_VALUES = [
    ("pooling_strategy", "mean", "'first'"),
    ("scorer_type", "dot", "'weighted-dot'"),
    ("class_token_pooling", "mean", "'average'"),
    ("architecture_type", "dual", "'uni-encoder'"),
    ("problem_type", "regression", "'multi_label_classification'"),
    ("focal_loss_reduction", "avg", "'sum'"),
    ("max_labels_alloc", "grow", "'dynamic'"),
    ("max_num_classes", 0, "positive"),
    ("dropout", 1.5, "[0, 1)"),
    ("encoder_layer_id", 7, "out of range"),
]


@pytest.mark.parametrize(("key", "value", "hint"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_names_the_key_and_what_is_allowed(key: str, value: object, hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        GLiClassConfig(encoder_config=tiny_bert(), **{key: value})
    assert str(error.value).startswith(f"{key}:")
    assert hint in str(error.value)


def test_incompatible_combinations_are_refused() -> None:
    with pytest.raises(ConfigError, match="pooling_strategy"):
        GLiClassConfig(encoder_config=tiny_bert(), pooling_strategy="pass")
    with pytest.raises(ConfigError, match="pooling_strategy"):
        GLiClassConfig(encoder_config=tiny_bert(), scorer_type="cross-attn")
    with pytest.raises(ConfigError, match="hidden_size"):
        GLiClassConfig(encoder_config=tiny_bert(), hidden_size=64, scorer_type="mlp")
    with pytest.raises(ConfigError, match="scorer_num_heads"):
        GLiClassConfig(
            encoder_config=tiny_bert(), scorer_type="cross-attn", pooling_strategy="pass", scorer_num_heads=5
        )
    # A wider projector is fine with the dot-product scorer: the projectors are built that wide.
    model = GLiClassModel(GLiClassConfig(encoder_config=tiny_bert(), hidden_size=64))
    assert model.model.text_projector.linear_1.out_features == 64
    assert model.model.classes_projector.linear_2.in_features == 64


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        ("encoder-decoder", "encoder_config: architecture_type 'encoder-decoder' needs an encoder-decoder"),
        ("encoder-decoder-cls", "encoder_config: architecture_type 'encoder-decoder-cls' needs"),
        ("decoder-kv", "encoder_config: 'decoder-kv' runs on a decoder backbone"),
    ],
)
def test_each_architecture_refuses_a_backbone_of_the_wrong_kind(architecture: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GLiClassConfig(encoder_config=tiny_bert(), architecture_type=architecture)
    with pytest.raises(ConfigError, match="scorer_type: 'decoder-kv' is the decoder-kv architecture's own"):
        GLiClassConfig(encoder_config=tiny_bert(), scorer_type="decoder-kv")


def test_a_multimodal_decoder_kv_checkpoint_is_refused_naming_the_key() -> None:
    from transformers import Qwen3Config

    qwen = Qwen3Config(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16)  # fmt: skip
    assert GLiClassConfig(encoder_config=qwen, architecture_type="decoder-kv").sep_id > 0
    with pytest.raises(ConfigError, match=r"^multimodal: decoder-kv with images or audio"):
        GLiClassConfig(encoder_config=qwen, architecture_type="decoder-kv", multimodal=True)


def test_a_bi_encoder_needs_its_label_encoder() -> None:
    with pytest.raises(ConfigError, match=r"^label_model_name: architecture_type 'bi-encoder' needs a label"):
        GLiClassConfig(encoder_config=tiny_bert(), architecture_type="bi-encoder")
    config = GLiClassConfig(
        encoder_config=tiny_bert(),
        architecture_type="bi-encoder-fused",
        label_model_name="tiny",
        label_model_config=tiny_bert().to_dict(),
    )
    assert GLiClassModel(config).label_encoder is not None
    with pytest.raises(ConfigError, match=r"^pooling_strategy: 'pass'"):
        GLiClassConfig(
            encoder_config=tiny_bert(),
            architecture_type="bi-encoder",
            label_model_name="tiny",
            label_model_config=tiny_bert().to_dict(),
            pooling_strategy="pass",
            scorer_type="cross-attn",
        )
