"""Systems that `everylabel eval` and the benchmarks can measure, behind one interface.

Each scorer maps (texts, candidate labels, multi_label) to one score per label per text:
- everylabel: a GLiClass checkpoint through `Classifier`;
- gliclass: the official `ZeroShotClassificationPipeline` on a GLiClass checkpoint;
- nli: the transformers `zero-shot-classification` pipeline (an NLI cross-encoder, one pass per label);
- embedding: cosine similarity between mean-pooled text and "This text is about {label}." embeddings.
A model is named `KIND:PATH` (`nli:path`, `embedding:path`, `gliclass:path`); a bare path is everylabel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from ..errors import MissingDependencyError
from ..inference.label_order import LabelOrder

KINDS = ("everylabel", "gliclass", "nli", "embedding")


class Scorer(Protocol):
    name: str

    def score(
        self, texts: Sequence[str], labels: Sequence[str], multi_label: bool
    ) -> list[dict[str, float]]: ...


def parse_model(spec: str) -> tuple[str, str]:
    """ "nli:/path" -> ("nli", "/path"); a bare path or hub id -> ("everylabel", spec)."""
    kind, sep, path = spec.partition(":")
    if sep and kind in KINDS:
        return kind, path
    return "everylabel", spec


def build_scorer(
    spec: str, device: str = "auto", batch_size: int = 32, dtype: str = "auto", **options: Any
) -> Scorer:
    """The scorer a model spec names, on `device` in `dtype` ("auto": bf16/fp16 on a GPU, fp32 on CPU)."""
    from ..paths import resolve_path
    from ..runtime import resolve_device, resolve_dtype

    kind, name = parse_model(spec)
    path = resolve_path(name) if kind != "everylabel" else name
    resolved = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, resolved)
    if kind == "everylabel":
        return EverylabelScorer(path, str(resolved), batch_size, dtype=torch_dtype, **options)
    if kind == "gliclass":
        return OfficialScorer(path, str(resolved), batch_size, torch_dtype)
    if kind == "nli":
        return NLIScorer(path, str(resolved), batch_size, torch_dtype)
    return EmbeddingScorer(path, str(resolved), batch_size, torch_dtype)


def _onnx_precision(classifier: Any) -> str | None:
    manifest = getattr(classifier, "manifest", None)
    return None if manifest is None else ("onnx-int8" if manifest.int8 else "onnx-fp32")


def _name(dtype: Any) -> str | None:
    """torch.bfloat16 -> "bfloat16" (reported with each evaluation)."""
    return None if dtype is None else str(dtype).replace("torch.", "")


class EverylabelScorer:
    label_order = "given"  # see `inference/label_order.py`

    def __init__(self, path: str, device: str, batch_size: int, **options: Any) -> None:
        from ..inference.classifier import Classifier

        self.label_order = options.pop("label_order", "given")
        self.name = f"everylabel:{path}" + (
            f" (label_order={self.label_order})" if self.label_order != "given" else ""
        )
        self.classifier = Classifier.from_pretrained(path, device=device, batch_size=batch_size, **options)
        # An ONNX export runs on onnxruntime in the export's precision (int8 weights, or fp32).
        self.dtype = _name(getattr(self.classifier, "dtype", None)) or _onnx_precision(self.classifier)
        self.cut_texts = 0  # texts cut to fit the window (reported with the evaluation)

    def score(self, texts: Sequence[str], labels: Sequence[str], multi_label: bool) -> list[dict[str, float]]:
        clf = self.classifier
        prepared = clf.prepare(
            list(texts), list(labels), multi_label=multi_label, label_order=cast(LabelOrder, self.label_order)
        )
        results = clf.decode(prepared, clf.score(prepared), warn=False)  # cut texts are counted instead
        self.cut_texts += sum(r.truncated for r in results)
        return [r.scores if not r.empty else dict.fromkeys(labels, 0.0) for r in results]


class OfficialScorer:
    def __init__(self, path: str, device: str, batch_size: int, dtype: Any = None) -> None:
        try:
            from gliclass import GLiClassModel, ZeroShotClassificationPipeline
        except ImportError:
            raise MissingDependencyError(
                "model: gliclass:... needs the official `gliclass` package (pip install gliclass==0.1.21)"
            ) from None
        from transformers import AutoTokenizer

        from ..runtime import model_max_length

        self.name = f"gliclass:{path}"
        self.dtype = _name(dtype)
        self.batch_size = batch_size
        model = GLiClassModel.from_pretrained(path).to(dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
        self.pipelines = {
            mode: ZeroShotClassificationPipeline(
                model,
                tokenizer,
                classification_type=mode,
                device=device,
                progress_bar=False,
                max_length=model_max_length(model.config),
            )
            for mode in ("multi-label", "single-label")
        }

    def score(self, texts: Sequence[str], labels: Sequence[str], multi_label: bool) -> list[dict[str, float]]:
        import torch

        pipe = self.pipelines["multi-label" if multi_label else "single-label"].pipe
        out = []
        with torch.inference_mode():
            # The pipeline returns only the top label in single-label mode; compute every score.
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                inputs = pipe.prepare_inputs(batch, list(labels), same_labels=True)
                logits = pipe.model(**inputs, max_num_classes=len(labels)).logits[:, : len(labels)].float()
                probs = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
                out += [dict(zip(labels, row.tolist(), strict=True)) for row in probs]
        return out


class NLIScorer:
    """An NLI cross-encoder through transformers' zero-shot pipeline: one forward pass per label."""

    def __init__(self, path: str, device: str, batch_size: int, dtype: Any = None) -> None:
        from transformers import pipeline

        self.name = f"nli:{path}"
        self.dtype = _name(dtype)
        self.batch_size = batch_size
        self.pipe = pipeline("zero-shot-classification", model=path, device=device, dtype=dtype)

    def score(self, texts: Sequence[str], labels: Sequence[str], multi_label: bool) -> list[dict[str, float]]:
        import torch

        out = []
        with torch.inference_mode():
            results = self.pipe(
                list(texts),
                candidate_labels=list(labels),
                multi_label=multi_label,
                batch_size=self.batch_size,
            )
        for result in results if isinstance(results, list) else [results]:
            out.append(dict(zip(result["labels"], result["scores"], strict=True)))
        return out


class EmbeddingScorer:
    """Cosine similarity of mean-pooled embeddings; "This text is about {label}." stands for a label."""

    template = "This text is about {label}."

    def __init__(self, path: str, device: str, batch_size: int, dtype: Any = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name = f"embedding:{path}"
        self.dtype = _name(dtype)
        self.batch_size = batch_size
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device=device, dtype=dtype).eval()
        self.max_length = min(512, int(getattr(self.model.config, "max_position_embeddings", 512)))

    def embed(self, texts: Sequence[str]) -> Any:
        import torch

        vectors = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state  # (batch, seq, dim)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                vectors.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
        return torch.cat(vectors)

    def score(self, texts: Sequence[str], labels: Sequence[str], multi_label: bool) -> list[dict[str, float]]:
        import torch

        text_vectors = self.embed(texts)
        label_vectors = self.embed([self.template.format(label=label) for label in labels])
        similarity = text_vectors @ label_vectors.T  # (texts, labels), cosine in [-1, 1]
        # Multi-label: cosine mapped to [0, 1]; single-label: a fixed temperature turns cosines into shares.
        scores = (similarity + 1) / 2 if multi_label else torch.softmax(similarity / 0.05, dim=-1)
        return [dict(zip(labels, row.tolist(), strict=True)) for row in scores]
