"""Training bi-encoders: the trainer (LoRA on both encoders) and few-shot fitting."""

from __future__ import annotations

from pathlib import Path

from everylabel import Classifier, create_model
from everylabel.training.fewshot import few_shot_fit
from everylabel.training.trainer import Trainer
from tests.backbones import minilm_dir
from tests.toy import TOPICS, topic_shots, toy_records
from tests.training.runs import config, logged

BI_MODEL = {"architecture_type": "bi-encoder", "pooling_strategy": "avg", "normalize_features": True,
            "logit_scale_init_value": 10.0, "focal_loss_alpha": -1, "focal_loss_gamma": 0}  # fmt: skip


def test_lora_bi_encoder_learns_and_its_export_classifies(toy_data, tmp_path: Path) -> None:
    cfg = config(
        minilm_dir(),
        toy_data,
        tmp_path,
        model_options=BI_MODEL,
        max_steps=24,
        eval_every=24,
        log_every=6,
        encoder_lr=1e-3,
        head_lr=1e-3,
        lora={"r": 4, "alpha": 8},
    )
    trainer = Trainer(cfg)
    before = trainer.evaluate()
    result = trainer.train()
    losses = logged(tmp_path, "loss")
    assert losses[-1] < 0.7 * losses[0]
    assert result.last_eval is not None and result.last_eval["macro_f1"] > before["macro_f1"] + 0.1
    clf = Classifier.from_pretrained(tmp_path / "final", device="cpu")
    assert clf.model.config.architecture_type == "bi-encoder"
    (result_row,) = clf.classify(["The striker scored twice in the final."], sorted(TOPICS))
    assert set(result_row.scores) == set(TOPICS)


def test_fused_bi_encoder_trains_on_tiny_backbones(backbone_dir, toy_data, tmp_path: Path) -> None:
    options = {**BI_MODEL, "architecture_type": "bi-encoder-fused", "label_model": str(backbone_dir("bert"))}
    cfg = config(backbone_dir("bert"), toy_data, tmp_path, model_options=options, max_steps=12, log_every=3)
    Trainer(cfg).train()
    losses = logged(tmp_path, "loss")
    assert len(losses) == 4 and losses[-1] < losses[0]
    clf = Classifier.from_pretrained(tmp_path / "final", device="cpu")
    assert clf.classify(["a match"], ["sports", "politics"])[0].scores


def test_few_shot_fit_adapts_a_bi_encoder() -> None:
    model, tokenizer = create_model(minilm_dir(), **{k: v for k, v in BI_MODEL.items() if "focal" not in k})
    classifier = Classifier(model, tokenizer, device="cpu")
    shots = topic_shots(8)
    test = [r for r in toy_records(120, seed=9) if len(r["true_labels"]) == 1]

    def accuracy() -> float:
        results = classifier.classify([r["text"] for r in test], sorted(TOPICS), multi_label=False)
        return sum(res.labels[0] == r["true_labels"][0] for res, r in zip(results, test, strict=True)) / len(
            test
        )

    before = accuracy()
    cached_before = classifier.encode_labels(sorted(TOPICS))
    few_shot_fit(classifier, shots, epochs=4, encoder_lr=5e-5, head_lr=1e-3)
    after = accuracy()
    assert after > before + 0.2 and after > 0.8, (before, after)
    # The label cache was cleared: the labels are encoded with the new weights.
    assert abs(classifier.encode_labels(sorted(TOPICS)) - cached_before).max() > 1e-3
