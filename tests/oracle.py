"""Helpers around the official `gliclass` package, used only as a test oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from gliclass import GLiClassModel as OfficialModel
from gliclass.config import GLiClassModelConfig
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

from everylabel.tokenization import SPECIAL_TOKENS


def official_checkpoint(backbone: Path, out: Path, **options: Any) -> Path:
    """Build an official GLiClass model on `backbone` with `options`, spread its weights, save it."""
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    n = len(tokenizer)
    config = GLiClassModelConfig(
        encoder_config=AutoConfig.from_pretrained(backbone),
        encoder_model=str(backbone),
        class_token_index=n,
        text_token_index=n + 1,
        example_token_index=n + 2,
        dropout=0.0,
        **options,
    )
    model = OfficialModel(config, from_pretrained=True)
    if options.get("architecture_type") != "bi-encoder":  # the plain bi-encoder's text has no markers
        tokenizer.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
        model.resize_token_embeddings(len(tokenizer))
    spread_weights(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def spread_weights(model: torch.nn.Module, std: float = 0.2) -> None:
    """Re-draw every weight so that logits differ clearly between labels (norms stay as they are)."""
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name.lower() or name.endswith("logit_scale"):
                continue
            param.copy_(torch.randn(param.shape, generator=generator) * std)


def official(model: Any, tokenizer: Any, mode: str, batch_size: int = 8, **kwargs: Any) -> list:
    """The official `ZeroShotClassificationPipeline`'s answers for `model` ("multi-label" or
    "single-label"), on the CPU, with the rest of `kwargs` (texts, labels, threshold, ...)."""
    from gliclass import ZeroShotClassificationPipeline

    pipe = ZeroShotClassificationPipeline(
        model, tokenizer, classification_type=mode, device="cpu", progress_bar=False
    )
    return pipe(batch_size=batch_size, **kwargs)


def as_scores(predictions: list[dict[str, Any]]) -> dict[str, float]:
    """An official pipeline answer for one text as label -> score."""
    return {p["label"]: p["score"] for p in predictions}


def load_official(path: Path) -> OfficialModel:
    return OfficialModel.from_pretrained(path).eval()


def format_input(
    text: str, labels: list[str], prompt_first: bool, prompt: str = "", examples: list[dict] | None = None
) -> str:
    """The official uni-encoder input string: labels block, prompt, text, examples block."""
    block = "".join(f"<<LABEL>>{label}" for label in labels) + "<<SEP>>" + prompt
    shots = ""
    if examples:
        shots = "".join(f"<<EXAMPLE>>{e['text']} \nLabels:\n {', '.join(e['labels'])}" for e in examples)
        shots += "<<SEP>>"
    return block + text + shots if prompt_first else text + block + shots


ROWS: list[tuple[str, list[str]]] = [
    ("The match ended in a draw after extra time.", ["sports", "politics", "cooking"]),
    (
        "Parliament passed the budget late on Thursday after a long debate about taxes, "
        "schools, hospitals and the roads that connect the northern villages.",
        ["politics", "economy", "sports", "weather", "health"],
    ),
    ("Stir the sauce gently.", ["cooking"]),
    ("Rain all week, then sun on Sunday.", ["weather", "travel", "climate science", "farming"]),
]


def batch(
    tokenizer: PreTrainedTokenizerBase,
    prompt_first: bool,
    with_prompt: bool = False,
    with_examples: bool = False,
) -> tuple[dict[str, torch.Tensor], int]:
    """A padded batch of texts of different lengths and label counts, and its label-slot count."""
    texts = []
    for i, (text, labels) in enumerate(ROWS):
        prompt = "Classify the topic:" if with_prompt and i % 2 == 0 else ""
        examples = (
            [{"text": "Goal in the last minute.", "labels": ["sports"]}] if with_examples and i < 2 else None
        )
        texts.append(format_input(text, labels, prompt_first, prompt, examples))
    enc = tokenizer(texts, padding="longest", return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, max(
        len(r[1]) for r in ROWS
    )


def multi_hot(num_slots: int) -> torch.Tensor:
    """Multi-label targets for ROWS: the first label of each row is true, padding slots are 0."""
    targets = torch.zeros(len(ROWS), num_slots)
    targets[:, 0] = 1.0
    for i, (_, labels) in enumerate(ROWS):
        if len(labels) > 2:
            targets[i, 2] = 1.0
    return targets


def official_bi_checkpoint(backbone: Path, label_backbone: Path, out: Path, **options: Any) -> Path:
    """An official bi-encoder (or bi-encoder-fused) on two tiny backbones, weights spread, saved."""
    label_config = AutoConfig.from_pretrained(label_backbone).to_dict()
    return official_checkpoint(
        backbone, out, label_model_name=str(label_backbone), label_model_config=label_config, **options
    )


def load_official_seq2seq(path: Path) -> OfficialModel:
    """An official encoder-decoder checkpoint loaded as the official model meant it.

    Under transformers 5 the official loader ties T5's encoder token embeddings back to `shared`
    but not the decoder's, which it leaves random (the checkpoint stores the tied matrix once);
    everylabel ties both. Tied here as well, so that the comparison is of the models, not of that.
    """
    model = load_official(path)
    backbone = model.model.encoder_decoder_model
    backbone.decoder.embed_tokens.weight = backbone.shared.weight
    return model
