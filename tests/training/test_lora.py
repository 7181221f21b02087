"""LoRA: train through the trainer, save the adapter alone, load it on a base, merge."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from everylabel import create_model, load_model
from everylabel.adapters import apply_lora, is_lora, merge_lora, save_adapter
from everylabel.training.config import config_from_dict
from everylabel.training.trainer import Trainer
from tests import oracle
from tests.toy import write_toy


def lora_model(backbone: Path):
    model, tokenizer = create_model(backbone, dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model.model.scorer)  # the head only: an adapter applies to an unchanged base
    oracle.spread_weights(model.model.classes_projector)
    apply_lora(model, r=4, alpha=8)
    with torch.no_grad():  # LoRA B starts at zero; give the adapters an effect to preserve
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    return model.eval(), tokenizer


def logits(model, tokenizer) -> torch.Tensor:
    inputs, slots = oracle.batch(tokenizer, prompt_first=False)
    with torch.no_grad():
        return model(**inputs, max_num_classes=slots).logits


def test_adapter_save_load_merge_give_identical_outputs(backbone_dir, tmp_path: Path) -> None:
    backbone = backbone_dir("bert")
    model, tokenizer = lora_model(backbone)
    before = logits(model, tokenizer)
    plain, _ = create_model(backbone, dropout=0.0, scorer_type="mlp")
    assert not torch.allclose(before, logits(plain.eval(), tokenizer), atol=1e-3)

    folder = save_adapter(model, tokenizer, tmp_path / "adapter")
    loaded, loaded_tokenizer = load_model(folder)
    assert is_lora(loaded)
    assert torch.allclose(logits(loaded, loaded_tokenizer), before, atol=1e-6)

    merged = merge_lora(loaded)
    assert not is_lora(merged)
    assert torch.allclose(logits(merged, loaded_tokenizer), before, atol=1e-5)
    # The merged model is a plain checkpoint with the official key names again.
    merged.save_pretrained(tmp_path / "merged")
    loaded_tokenizer.save_pretrained(tmp_path / "merged")
    with safe_open(str(tmp_path / "merged" / "model.safetensors"), "pt") as f:
        assert not any("lora" in key or "base_model" in key for key in f.keys())  # noqa: SIM118
    official = oracle.load_official(tmp_path / "merged")
    inputs, slots = oracle.batch(loaded_tokenizer, prompt_first=False)
    with torch.no_grad():
        assert torch.allclose(official(**inputs, max_num_classes=slots).logits, before, atol=1e-5)


def test_adapter_folder_holds_only_what_training_changed(backbone_dir, tmp_path: Path) -> None:
    model, tokenizer = lora_model(backbone_dir("bert"))
    folder = save_adapter(model, tokenizer, tmp_path / "adapter")
    merge_lora(model).save_pretrained(tmp_path / "full")
    adapter_bytes = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    full_bytes = (tmp_path / "full" / "model.safetensors").stat().st_size
    assert adapter_bytes < full_bytes / 4
    with safe_open(str(folder / "head.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "special_token_embeddings" in keys and not any(k.startswith("model.encoder_model.") for k in keys)


def test_lora_training_moves_adapters_head_and_special_tokens_only(backbone_dir, tmp_path: Path) -> None:
    data = write_toy(tmp_path / "train.jsonl", 32)
    config = config_from_dict({
        "model": str(backbone_dir("bert")), "train_data": str(data), "output_dir": str(tmp_path / "run"),
        "model_options": {"dropout": 0.0}, "max_steps": 4, "batch_size": 8,
        "encoder_lr": 1e-2, "head_lr": 1e-2,
        "lora": {"r": 4, "alpha": 8, "target_modules": ["query", "value"]},
    })  # fmt: skip
    trainer = Trainer(config)
    encoder = trainer.model.model.encoder_model.get_base_model()
    frozen = {
        k: v.clone() for k, v in encoder.state_dict().items() if "lora" not in k and "token_adapter" not in k
    }
    special = torch.tensor(trainer.model.config.special_token_ids())
    embeddings_before = encoder.get_input_embeddings()(special).detach().clone()
    head_before = trainer.model.model.classes_projector.linear_1.weight.detach().clone()
    trainer.train()
    after = encoder.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    assert not torch.allclose(encoder.get_input_embeddings()(special), embeddings_before)
    assert not torch.equal(trainer.model.model.classes_projector.linear_1.weight, head_before)
    final = tmp_path / "run" / "final"
    assert (final / "everylabel_adapter.json").exists()
    reloaded, tokenizer = load_model(final)
    assert torch.allclose(
        logits(reloaded, tokenizer), logits(trainer.model.eval(), trainer.tokenizer), atol=1e-6
    )


def test_a_classifier_runs_an_adapter_folder_merged_alike(backbone_dir, tmp_path: Path) -> None:
    from everylabel import Classifier

    model, tokenizer = lora_model(backbone_dir("bert"))
    folder = save_adapter(model, tokenizer, tmp_path / "adapter")
    texts, labels = ["the match ended with a late goal", "bread and soup for dinner"], ["sports", "food"]
    unmerged = Classifier(*load_model(folder), device="cpu", dtype="float32")
    assert is_lora(unmerged.backend.model)
    served = Classifier.from_pretrained(folder, device="cpu", dtype="float32", backend="torch")
    assert not is_lora(served.backend.model)  # folded in at load: one product per adapted module
    for a, b in zip(unmerged.classify(texts, labels), served.classify(texts, labels), strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    # The trainer still continues an adapter folder as LoRA (only inference merges).
    assert is_lora(load_model(folder)[0])
