"""`pool_text_before_examples`: the text vector pools the text, not the in-context examples after it."""

from __future__ import annotations

import pytest
import torch

from everylabel import Classifier, ConfigError, create_model
from everylabel.config import GLiClassConfig

OPTIONS = {
    "pooling_strategy": "avg",
    "extract_text_features": True,
    "prompt_first": True,
    "scorer_type": "simple",
    "normalize_features": True,
    "dropout": 0.0,
}


def head_text_vector(model, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    out = model.model.head(hidden, ids, (ids != 0).long(), 1, mask_padding=True)
    return out.text_vectors


@pytest.mark.parametrize("on", [True, False])
def test_the_text_vector_is_the_mean_from_the_separator_to_the_first_example(backbone_dir, on: bool) -> None:
    model, _ = create_model(backbone_dir("bert"), pool_text_before_examples=on, **OPTIONS)
    model.eval()
    label_id, sep_id, example_id = model.config.special_token_ids()
    # [CLS] <<LABEL>> x <<SEP>> t t <<EXAMPLE>> e e [SEP] pad
    ids = torch.tensor([[101, label_id, 2000, sep_id, 2001, 2002, example_id, 2003, 2004, 102, 0]])
    hidden = torch.randn(1, ids.shape[1], model.config.hidden_size)  # (1, seq, hidden)
    hidden[0, 6:10] += 50.0  # the examples, far from the text
    end = 6 if on else 10
    expected = model.model.text_projector(hidden[0, 3:end].mean(0, keepdim=True))
    expected = expected / expected.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        got = head_text_vector(model, hidden, ids)
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_classifier_reads_the_option_from_the_config(backbone_dir, tmp_path) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), pool_text_before_examples=True, **OPTIONS)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    clf = Classifier.from_pretrained(tmp_path, device="cpu")
    assert clf.model.config.pool_text_before_examples is True
    examples = [{"text": "a long example " * 20, "labels": ["sports"]}]
    alone = clf.classify("the match", ["sports", "music"])[0].scores
    shown = clf.classify("the match", ["sports", "music"], examples=examples)[0].scores
    assert set(alone) == set(shown)  # scored; the examples still reach the text through attention


def test_a_bad_value_is_a_config_error(backbone_dir) -> None:
    with pytest.raises(ConfigError, match="pool_text_before_examples"):
        GLiClassConfig(encoder_model=str(backbone_dir("bert")), pool_text_before_examples="yes")
