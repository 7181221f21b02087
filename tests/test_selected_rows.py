"""The last-layer shortcut (modeling/selected_rows.py) gives the logits of the whole model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModel, RobertaConfig

from everylabel import create_model
from everylabel.modeling import uni_encoder
from everylabel.prompt import InputBuilder, Request
from tests import backbones

LABELS = [["sports", "politics", "cooking"], ["science"], ["music", "travel", "law", "art", "food"]]
TEXTS = ["the match went to extra time", "a short one", "the orchestra played a new piece tonight in town"]


def _tiny_roberta(folder):
    tokenizer = backbones.tokenizer_for("bert")
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=backbones.HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=600,
    )
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _backbone(family: str, backbone_dir, tmp_path):
    return _tiny_roberta(tmp_path / "roberta") if family == "roberta" else backbone_dir(family)


def _batch(model, tokenizer) -> dict[str, torch.Tensor]:
    """The three requests laid out by the project's builder, right-padded into one batch."""
    builder = InputBuilder(tokenizer, model.config, max_length=128)
    requests = [
        Request(text, labels, [None] * len(labels)) for text, labels in zip(TEXTS, LABELS, strict=True)
    ]
    passes, _ = builder.build(requests, "error")
    width = max(len(p.input_ids) for p in passes)
    ids = torch.full((len(passes), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(passes), width), dtype=torch.long)
    for row, item in enumerate(passes):
        ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        mask[row, : len(item.input_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model, batch: dict[str, torch.Tensor], shortcut: bool) -> torch.Tensor:
    model.model.last_layer_at_read_rows = shortcut
    with torch.inference_mode():
        return model(**batch).logits


def _spy(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = uni_encoder.encode_selected_rows

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(uni_encoder, "encode_selected_rows", counted)
    return calls


@pytest.mark.parametrize("family", ["bert", "electra", "roberta"])
@pytest.mark.parametrize("prompt_first", [False, True])
@pytest.mark.parametrize("embed_class_token", [True, False])
def test_shortcut_gives_the_logits_of_the_whole_model(
    backbone_dir, tmp_path, monkeypatch, family: str, prompt_first: bool, embed_class_token: bool
) -> None:
    model, tokenizer = create_model(
        _backbone(family, backbone_dir, tmp_path),
        scorer_type="mlp",
        prompt_first=prompt_first,
        embed_class_token=embed_class_token,
        use_segment_embeddings=family == "bert",
    )
    model.eval()
    for parameter in model.parameters():  # weights with spread, so that logits are not flat
        parameter.data.normal_(0, 0.2)
    batch = _batch(model, tokenizer)
    assert (batch["attention_mask"] == 0).any(), "the batch must hold padding"
    calls = _spy(monkeypatch)
    fast = _logits(model, batch, shortcut=True)
    assert calls, "the shortcut was not taken"
    whole = _logits(model, batch, shortcut=False)
    assert len(calls) == 1
    assert whole.std() > 1e-3
    assert (fast - whole).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("bert", {"pooling_strategy": "avg"}),
        ("bert", {"class_token_pooling": "average"}),
        ("bert", {"use_lstm": True}),
        ("bert", {"extract_text_features": True}),
        ("bert", {"pooling_strategy": "pass", "scorer_type": "cross-attn"}),
        ("deberta-v2", {}),
        ("modernbert", {}),
    ],
)
def test_shortcut_is_not_taken_where_the_head_reads_more(
    backbone_dir, monkeypatch, family: str, options: dict[str, Any]
) -> None:
    model, tokenizer = create_model(backbone_dir(family), **options)
    model.eval()
    calls = _spy(monkeypatch)
    _logits(model, _batch(model, tokenizer), shortcut=True)
    assert not calls


def test_shortcut_is_not_taken_in_training(backbone_dir, monkeypatch) -> None:
    model, tokenizer = create_model(backbone_dir("bert"))
    model.train()
    calls = _spy(monkeypatch)
    model(**_batch(model, tokenizer))
    assert not calls


def test_shortcut_on_minilm_matches_whole_model() -> None:
    model, tokenizer = create_model(backbones.minilm_dir(), scorer_type="mlp", prompt_first=True)
    model.eval()
    batch = _batch(model, tokenizer)
    fast = _logits(model, batch, shortcut=True)
    whole = _logits(model, batch, shortcut=False)
    assert (fast - whole).abs().max().item() <= 1e-4


def test_shortcut_runs_through_lora_adapters(backbone_dir, monkeypatch) -> None:
    from everylabel.adapters import apply_lora

    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp")
    model = apply_lora(model, r=4)
    for name, parameter in model.named_parameters():  # non-zero LoRA B, so the adapters matter
        if "lora_" in name:
            parameter.data.normal_(0, 0.2)
    model.eval()
    batch = _batch(model, tokenizer)
    calls = _spy(monkeypatch)
    fast = _logits(model, batch, shortcut=True)
    assert calls
    whole = _logits(model, batch, shortcut=False)
    assert (fast - whole).abs().max().item() <= 1e-5
