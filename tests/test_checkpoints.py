"""Save / load round trips, safe loading, squeeze-excitation checkpoints, and new models on a backbone."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer

from everylabel import GLiClassConfig, GLiClassModel, create_model, load_model
from tests import oracle
from tests.backbones import minilm_dir

ROUND_TRIP_OPTIONS: list[dict[str, Any]] = [
    {},
    {"scorer_type": "weighted-dot", "class_token_pooling": "average", "prompt_first": True},
    {"scorer_type": "cross-attn", "pooling_strategy": "pass", "scorer_num_heads": 4, "use_lstm": True},
    {"scorer_type": "hopfield", "normalize_features": True, "use_segment_embeddings": True},
    {"squeeze_layers": True, "pooling_strategy": "avg"},
]


def new_model(backbone: Path, **options: Any) -> tuple[GLiClassModel, Any]:
    model, tokenizer = create_model(backbone, dropout=0.0, **options)
    oracle.spread_weights(model)
    return model.eval(), tokenizer


@pytest.mark.parametrize(
    "options", ROUND_TRIP_OPTIONS, ids=lambda o: "-".join(map(str, o.values())) or "default"
)
def test_save_load_gives_identical_outputs(backbone_dir, tmp_path: Path, options: dict[str, Any]) -> None:
    model, tokenizer = new_model(backbone_dir("bert"), **options)
    inputs, slots = oracle.batch(
        tokenizer, bool(options.get("prompt_first")), with_prompt=True, with_examples=True
    )
    with torch.no_grad():
        before = model(**inputs, max_num_classes=slots).logits
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "config.json").exists()
    loaded, loaded_tokenizer = load_model(tmp_path)
    assert loaded_tokenizer(oracle.ROWS[0][0])["input_ids"] == tokenizer(oracle.ROWS[0][0])["input_ids"]
    with torch.no_grad():
        after = loaded(**inputs, max_num_classes=slots).logits
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)
    # Bitwise-equal weights; memory-mapped tensors may take another CPU kernel path (float rounding).
    assert torch.allclose(before, after, rtol=1e-6, atol=1e-6)


def test_state_dict_uses_the_official_key_names(backbone_dir, tmp_path: Path) -> None:
    model, _ = new_model(
        backbone_dir("bert"),
        scorer_type="mlp",
        use_lstm=True,
        squeeze_layers=True,
        use_segment_embeddings=True,
    )
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert all(k.startswith("model.") for k in keys)
    expected = {
        "model.logit_scale",
        "model.text_projector.linear_1.weight",
        "model.classes_projector.linear_2.bias",
        "model.scorer.mlp.0.weight",
        "model.scorer.mlp.4.bias",
        "model.lstm.lstm.weight_ih_l0_reverse",
        "model.layer_wise_attention.squeeze.weight",
        "model.layer_wise_attention.W1.weight",
        "model.layer_wise_attention.W2.bias",
        "model.layer_wise_attention.output_projection.weight",
        "model.segment_embeddings.weight",
        "model.encoder_model.embeddings.word_embeddings.weight",
    }
    assert expected <= keys


def test_squeeze_layers_checkpoint_runs_on_layer_outputs(backbone_dir, tmp_path: Path) -> None:
    # The official 0.1.21 model builds these weights but crashes in forward; its checkpoint must load.
    official_dir = oracle.official_checkpoint(backbone_dir("bert"), tmp_path, squeeze_layers=True)
    model, info = GLiClassModel.from_pretrained(official_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model.eval()
    _, tokenizer = load_model(official_dir)
    inputs, slots = oracle.batch(tokenizer, prompt_first=False)

    with torch.no_grad():
        got = model(**inputs, max_num_classes=slots).logits
        states = model.model.encoder_model(**inputs, output_hidden_states=True).hidden_states[1:]
        se = model.model.layer_wise_attention
        # Squeeze-excitation written out: z_k = mean_t(w . h_kt + b), s = sigmoid(W2 relu(W1 z)).
        z = torch.stack(
            [(h @ se.squeeze.weight.T + se.squeeze.bias).squeeze(-1).mean(dim=1) for h in states], 1
        )
        s = torch.sigmoid(F.linear(F.relu(F.linear(z, se.W1.weight, se.W1.bias)), se.W2.weight, se.W2.bias))
        fused = sum(s[:, k, None, None] * h for k, h in enumerate(states))
        fused = F.linear(fused, se.output_projection.weight, se.output_projection.bias)
        expected = model.model.head(fused, inputs["input_ids"], inputs["attention_mask"], slots).logits
        plain = model.model.head(states[-1], inputs["input_ids"], inputs["attention_mask"], slots).logits
    assert len(states) == se.W1.in_features == se.W2.out_features == model.config.num_encoder_layers == 2
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_minilm_backbone_builds_a_model_offline(tmp_path: Path) -> None:
    model, tokenizer = create_model(minilm_dir(), scorer_type="mlp")
    label_id, sep_id, example_id = model.config.special_token_ids()
    assert tokenizer.convert_tokens_to_ids(["<<LABEL>>", "<<SEP>>", "<<EXAMPLE>>"]) == [
        label_id,
        sep_id,
        example_id,
    ]
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) == 30525
    # The pretrained weights are kept, not re-initialised.
    reference = AutoModel.from_pretrained(minilm_dir())
    ours = model.model.encoder_model.state_dict()
    for name, value in reference.state_dict().items():
        if name != "embeddings.word_embeddings.weight":
            assert torch.equal(ours[name], value), name
    assert torch.equal(
        ours["embeddings.word_embeddings.weight"][:30522], reference.get_input_embeddings().weight
    )
    # The special tokens are whole tokens, and the model scores a real input.
    ids = tokenizer("<<LABEL>>sports<<LABEL>>politics<<SEP>>")["input_ids"]
    assert ids.count(label_id) == 2 and ids.count(sep_id) == 1
    inputs, slots = oracle.batch(tokenizer, prompt_first=False)
    with torch.no_grad():
        logits = model.eval()(**inputs).logits
    assert logits.shape == (len(oracle.ROWS), slots)
    # The official package loads what everylabel created.
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    theirs = oracle.load_official(tmp_path)
    with torch.no_grad():
        assert torch.allclose(theirs(**inputs, max_num_classes=slots).logits, logits, atol=1e-5)


def test_dynamic_label_slots_follow_the_batch(backbone_dir) -> None:
    model, tokenizer = new_model(backbone_dir("bert"))
    inputs, slots = oracle.batch(tokenizer, prompt_first=False)
    with torch.no_grad():
        out = model(**inputs)
        fixed = model(**inputs, max_num_classes=25)
    assert out.logits.shape[1] == slots == 5
    assert out.label_mask.sum(dim=1).tolist() == [len(labels) for _, labels in oracle.ROWS]
    assert torch.allclose(fixed.logits[:, :slots], out.logits, atol=1e-6)
    model.config.max_labels_alloc = "fixed"
    with torch.no_grad():
        assert model(**inputs).logits.shape[1] == model.config.max_num_classes


def test_bin_checkpoint_loads_with_weights_only(backbone_dir, tmp_path: Path) -> None:
    model, tokenizer = new_model(backbone_dir("bert"), scorer_type="mlp")
    model.config.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    loaded, _ = load_model(tmp_path)
    inputs, _ = oracle.batch(tokenizer, prompt_first=False)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickled_code_in_a_bin_checkpoint_is_never_run(backbone_dir, tmp_path: Path) -> None:
    model, _ = new_model(backbone_dir("bert"))
    model.config.save_pretrained(tmp_path)
    marker = tmp_path / "exploited"
    state = dict(model.state_dict())
    state["payload"] = _Exploit(marker)  # type: ignore[assignment]
    with open(tmp_path / "pytorch_model.bin", "wb") as handle:
        pickle.dump(state, handle)
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do, as long as nothing ran
        GLiClassModel.from_pretrained(tmp_path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="weights_only"):
        GLiClassModel.from_pretrained(tmp_path, weights_only=False)
    assert not marker.exists()


def test_tokenizer_that_does_not_match_the_config_is_refused(backbone_dir, tmp_path: Path) -> None:
    model, _ = new_model(backbone_dir("bert"))
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(tmp_path)  # lacks the special tokens
    with pytest.raises(ValueError, match="special-token ids"):
        load_model(tmp_path)


def test_bf16_load_runs(backbone_dir, tmp_path: Path) -> None:
    model, tokenizer = new_model(backbone_dir("bert"))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_model(tmp_path, dtype=torch.bfloat16)
    inputs, _ = oracle.batch(tokenizer, prompt_first=False)
    with torch.no_grad():
        low = loaded(**inputs).logits
        full = model(**inputs).logits
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), full, atol=0.1 * full.abs().max().item())


def test_config_type_is_kept_on_load(backbone_dir, tmp_path: Path) -> None:
    model, _ = new_model(backbone_dir("bert"), prompt_first=True)
    model.save_pretrained(tmp_path)
    loaded = GLiClassModel.from_pretrained(tmp_path)
    assert isinstance(loaded.config, GLiClassConfig)
    assert loaded.config.prompt_first is True
    assert loaded.config.encoder_model_name == str(backbone_dir("bert"))
