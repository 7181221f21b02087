"""Export a GLiClass checkpoint to ONNX (needs torch): the graphs, tokenizers, manifest and parity.

- uni-encoder: one graph, `input_ids`, `attention_mask` (batch, sequence) and `label_slots`
  (labels,) -> `logits` (batch, labels). `label_slots` carries only its length: the number of
  label slots of the batch. LoRA adapters are merged first.
- bi-encoder and bi-encoder-fused: a label graph (`label_input_ids`, `label_attention_mask`
  (labels, label_sequence) -> `label_vectors` (labels, width)), so label vectors stay cacheable,
  and a text graph that takes them: `label_vectors` (labels, width) and `label_index`
  (batch, slots; -1 for padding) -> `logits` (batch, slots).
- a model with an embedding blend: also its embedding backbone, `input_ids`, `attention_mask`
  -> `embedding` (batch, width), mean-pooled over real tokens and L2-normalised.

The pooling mode (`mask_padding`) is the Classifier's default for the checkpoint and is fixed in
the graph. Every graph is run on inputs other than those it was traced with, against the torch
model, before the export is kept (fp32 logits within 1e-4); those inputs and outputs are written
as `parity.npz`. The backbones are traced with eager attention, and each graph of a BERT-family
backbone is then fused (`fusion.py`: attention, skip layer norm, bias GELU, embedding layer norm);
the fused graph is kept only if it passes the same check, and the manifest records what fused.
`int8=True` then quantizes the weights of the text graph dynamically (the embedding graph too
with `int8_embedding=True`; a bi-encoder's label graph, run once per label, stays fp32; see
`quantize.py`); the agreement with fp32 is measured and written into the manifest.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from ..adapters import is_lora, merge_lora
from ..digests import model_sources
from ..errors import ConfigError, InputError, NotSupportedError
from ..inference.calibration import CALIBRATION_FILE
from ..inference.engine import ClassifierEngine
from ..inference.label_vectors import slot_inputs
from ..inference.torch_backend import TorchBackend
from ..loading import load_model
from ..modeling import GLiClassModel
from ..padding import pad_rows
from ..paths import PathLike, resolve_path
from ..tokenization import load_label_tokenizer
from .fast_tokenizer import same_plain_tokenization
from .fusion import fusable, fuse_graph
from .manifest import MANIFEST, OnnxManifest, TokenizerInfo, is_onnx_export
from .runtime import BACKGROUND_FILE, OnnxBackend, Session

MIN_OPSET = 17
PARITY_TOLERANCE = 1e-4
# Options whose computation the ONNX graphs do not reproduce: the config key and why.
REFUSED = {
    "use_lstm": "the bidirectional LSTM runs on packed sequences, which do not export",
}

# The parity inputs: the graphs are checked on them, and int8 ranks its weight nodes on them
# (quantize.py), so they vary in length, topic and label count.
_TEXTS = [
    "The striker scored twice and the home side won the cup final after extra time.",
    "Parliament passed the budget.",
    "Whisk the eggs with sugar, fold in the flour and bake the cake for twenty minutes at 180 degrees.",
    "My laptop will not boot since the update: the screen stays black and the fan runs at full speed, "
    "and holding the power button does nothing. Has anyone had this with the new drivers?",
    "Shares fell sharply after the bank cut its profit forecast and warned of higher loan losses.",
    "A dull, overlong film with a great cast wasted on a script that goes nowhere.",
]
_LABELS = [
    ["sports", "politics", "cooking"],
    ["economy", "law"],
    ["baking", "science", "travel", "music"],
    ["computers", "hardware problem", "religion", "space", "medicine", "cars"],
    ["finance", "earnings", "sports", "weather", "crude oil"],
    ["negative review", "positive review", "neutral"],
]


class _UniGraph(nn.Module):
    def __init__(self, model: nn.Module, mask_padding: bool) -> None:
        super().__init__()
        self.model, self.mask_padding = model, mask_padding

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> Any:
        """rest: label_slots (labels,), after the label blocks' ids and mask for the encoder-decoders."""
        label_slots = rest[-1]
        blocks = {"class_input_ids": rest[0], "class_attention_mask": rest[1]} if len(rest) == 3 else {}
        out = self.model(
            input_ids,
            attention_mask,
            max_num_classes=label_slots.shape[0],
            mask_padding=self.mask_padding,
            **blocks,
        )
        return out.logits


class _BiTextGraph(nn.Module):
    def __init__(self, model: nn.Module, mask_padding: bool) -> None:
        super().__init__()
        self.model, self.mask_padding = model, mask_padding

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_vectors: torch.Tensor,
        label_index: torch.Tensor,
    ) -> Any:
        out = self.model(
            input_ids,
            attention_mask,
            max_num_classes=label_index.shape[1],
            mask_padding=self.mask_padding,
            label_embeddings=label_vectors,
            label_index=label_index,
        )
        return out.logits


class _LabelGraph(nn.Module):
    def __init__(self, model: Any, mask_padding: bool) -> None:
        super().__init__()
        self.model, self.mask_padding = model, mask_padding

    def forward(self, label_input_ids: torch.Tensor, label_attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_labels(label_input_ids, label_attention_mask, self.mask_padding)


class _EmbeddingGraph(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]  # (batch, seq, width)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # (batch, width)
        return torch.nn.functional.normalize(pooled, dim=-1)


def _export(module: nn.Module, args: tuple, path: Path, names: list[str], axes: dict, opset: int) -> None:
    outputs = [n for n in axes if n not in names]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )


def _backend(clf: ClassifierEngine) -> TorchBackend:
    assert isinstance(clf.backend, TorchBackend)
    return clf.backend


def _model(clf: ClassifierEngine) -> Any:
    return _backend(clf).model


def eager_attention(model: nn.Module) -> None:
    """Every backbone in `model` on eager attention, the pattern the fusions recognise."""
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and not isinstance(module, GLiClassModel):
            with contextlib.suppress(ValueError, ImportError, AttributeError):
                module.set_attn_implementation("eager")


def check_exportable(config: Any, opset: int) -> None:
    """Refuse what the graphs cannot reproduce, naming the option."""
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise NotSupportedError(f"opset: {opset!r}; the export needs opset {MIN_OPSET} or newer")
    for key, why in REFUSED.items():
        if getattr(config, key, False):
            raise NotSupportedError(f"{key}: cannot be exported to ONNX ({why})")
    if config.architecture_type == "decoder-kv":
        raise NotSupportedError(
            "architecture_type: 'decoder-kv' cannot be exported to ONNX yet (the label section's width "
            "and the recurrent steps' halting depend on the data, which a traced graph would freeze); "
            "run it with the torch backend"
        )


def export_onnx(
    model: PathLike,
    out: PathLike,
    *,
    int8: bool = False,
    opset: int = MIN_OPSET,
    weight_type: str = "qint8",
    reduce_range: bool = False,
    per_channel: bool = True,
    keep_fp32: int | None = None,
    int8_embedding: bool = False,
    replace: bool = True,
    force: bool = False,
    fuse: bool = True,
) -> Path:
    """Export the checkpoint at `model` into the folder `out` (written whole, then moved in place).

    An existing `out` is replaced only if it is an everylabel export or empty; any other folder is
    refused unless `force`, and a folder the model is read from (or one holding it) always is
    (`check_destination`). `replace=False` keeps an `out` that another process finished first (a
    shared cache folder).
    """
    import onnxruntime  # noqa: F401  (the parity check runs the graphs; fail before the work)

    out = Path(out)
    check_destination(model, out, force)
    gliclass, tokenizer = load_model(model, dtype=torch.float32)
    check_exportable(gliclass.config, opset)
    if is_lora(gliclass):
        merge_lora(gliclass)
    if fuse:
        eager_attention(gliclass)
    options: dict[str, Any] = {}
    if gliclass.config.is_bi_encoder:
        options["label_tokenizer"] = load_label_tokenizer(gliclass.config, str(resolve_path(model)))
    clf = ClassifierEngine(TorchBackend(gliclass, tokenizer, device="cpu", dtype="fp32", **options))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".export-{out.name}-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()  # with the user's umask, as the finished folder keeps it
    try:
        manifest = _write_graphs(clf, work, opset, str(model), fuse)
        if int8:
            from .quantize import KEEP_FP32, quantize_export

            kept = KEEP_FP32 if keep_fp32 is None else keep_fp32
            quantize_export(work, manifest, weight_type, reduce_range, int8_embedding, per_channel, kept)
        manifest.save(work)
        write_background_vectors(work, manifest)
        calibration = Path(resolve_path(model)) / CALIBRATION_FILE
        if calibration.is_file():  # applied to the graphs' logits by the runtime, as by torch
            shutil.copy2(calibration, work / CALIBRATION_FILE)
        _move_into_place(work, out, replace)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def write_background_vectors(folder: Path, manifest: OnnxManifest) -> None:
    """An embedding blend's background labels embedded by the folder's own (final) embedding graph,
    written beside it, so that a fresh process does not embed them on its first call."""
    blend = manifest.embedding_blend
    if not blend or not blend.get("background"):
        return
    backend = OnnxBackend(folder)
    retriever = backend.embedding_retriever(str(blend["model"]), str(blend["template"]))
    assert retriever is not None
    labels = list(blend["background"])
    vectors = retriever.label_vectors(labels)  # (labels, width)
    np.savez(folder / BACKGROUND_FILE, labels=np.array(labels), vectors=vectors, template=blend["template"])


def check_destination(model: PathLike, out: Path, force: bool = False) -> None:
    """Refuse an `out` whose contents an export would destroy without being asked: a folder the
    model is read from, or one that holds it (always), or a folder that is neither empty nor an
    everylabel export (unless `force`)."""
    target = out.resolve()
    for source in model_sources(model):
        if target == source or target in source.parents:
            raise InputError(
                "out", f"{out} is (or holds) {source}, which the model is read from; choose another folder"
            )
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError("out", f"{out} is a file, not a folder")
    present = sorted(p.name for p in out.iterdir())
    if not present or is_onnx_export(out) or force:
        return
    shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3 else "")
    raise InputError(
        "out",
        f"{out} exists and is not an everylabel export (it holds {shown}); choose another folder, or "
        "--force (force=True) to replace it",
    )


def _move_into_place(work: Path, out: Path, replace: bool) -> None:
    """`work` renamed to `out`. An existing `out` is moved aside first and removed only once the
    new folder is in place; with `replace=False`, another process's finished export is kept."""
    if out.exists() and replace:
        aside = out.with_name(f".{out.name}.replaced-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(out, aside)
        try:
            os.rename(work, out)
        except OSError:
            os.rename(aside, out)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        return
    try:
        os.rename(work, out)
    except OSError:
        if replace or not (out / MANIFEST).is_file():
            raise  # not a finished export of another process


def _write_graphs(clf: ClassifierEngine, folder: Path, opset: int, source: str, fuse: bool) -> OnnxManifest:
    config = _model(clf).config
    tokenizer: Any = clf.tokenizer
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    text_info = TokenizerInfo("tokenizer.json", clf.pad_id, list(tokenizer.all_special_ids), clf.max_length)
    manifest = OnnxManifest(
        architecture_type=config.architecture_type,
        prompt_first=bool(config.prompt_first),
        special_ids=tuple(config.special_token_ids()),
        mask_padding=clf.mask_padding,
        opset=opset,
        int8=False,
        text=text_info,
        source=source,
        label_template=config.label_template,
        dot_scored=_backend(clf).dot_scored,
    )
    parity: dict[str, np.ndarray] = {}
    trace = clf.prepare(_TEXTS[:2], [labels[:2] for labels in _LABELS[:2]])
    check = clf.prepare(_TEXTS, _LABELS)
    if config.is_bi_encoder:
        _write_bi_encoder(clf, folder, opset, manifest, trace, check, parity, fuse)
    else:
        graph = _UniGraph(_model(clf), clf.mask_padding)
        names = _uni_names(config)
        axes = {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "class_input_ids": {0: "batch", 1: "label_sequence"},
            "class_attention_mask": {0: "batch", 1: "label_sequence"},
            "label_slots": {0: "labels"},
            "logits": {0: "batch", 1: "labels"},
        }
        axes = {k: v for k, v in axes.items() if k in (*names, "logits")}
        _export(graph, _uni_inputs(clf, trace), folder / "model.onnx", names, axes, opset)
        inputs = _uni_inputs(clf, check)
        with torch.no_grad():
            expected = graph(*inputs).numpy()
        feeds = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}
        _check(folder / "model.onnx", feeds, expected, "model.onnx")
        _fuse(folder / "model.onnx", feeds, expected, _model(clf).encoder.config, manifest, fuse)
        parity.update({f"model.{k}": v for k, v in feeds.items()}, **{"model.logits": expected})
    if clf.blend is not None:
        _write_embedding(clf, folder, opset, manifest, parity, fuse)
    np.savez(folder / "parity.npz", **cast(dict[str, Any], parity))
    return manifest


def _uni_names(config: Any) -> list[str]:
    """The inputs of the one-backbone graph: the encoder-decoders also read the label blocks."""
    blocks = ["class_input_ids", "class_attention_mask"] if config.uses_encoder_decoder else []
    return ["input_ids", "attention_mask", *blocks, "label_slots"]


def _uni_inputs(clf: ClassifierEngine, prepared: Any) -> tuple[torch.Tensor, ...]:
    """The graph's inputs for `prepared`, in the order of `_uni_names`."""
    passes = prepared.passes
    ids, mask = pad_rows([p.input_ids for p in passes], clf.pad_id)
    slots = torch.zeros(max(p.num_labels for p in passes), dtype=torch.int64)
    blocks: list[torch.Tensor] = []
    if passes[0].label_ids is not None:
        block_ids, block_mask = pad_rows([p.label_ids for p in passes], clf.pad_id)
        blocks = [torch.from_numpy(block_ids), torch.from_numpy(block_mask)]
    return (torch.from_numpy(ids), torch.from_numpy(mask), *blocks, slots)


def _difference(path: Path, feeds: dict[str, np.ndarray], expected: np.ndarray) -> float:
    """The graph's largest difference from `expected` on `feeds` (inf when the shapes differ)."""
    got = Session(path, None).run(feeds)
    return float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")


def _check(path: Path, feeds: dict[str, np.ndarray], expected: np.ndarray, name: str) -> None:
    worst = _difference(path, feeds, expected)
    if not worst <= PARITY_TOLERANCE:
        raise NotSupportedError(
            f"{name}: the ONNX graph differs from the torch model by {worst:.2e}; this model's options "
            "do not export faithfully"
        )


def _fuse(
    path: Path,
    feeds: dict[str, np.ndarray],
    expected: np.ndarray,
    backbone: Any,
    manifest: OnnxManifest,
    enabled: bool,
) -> None:
    """Replace the (checked) graph at `path` by its fused form if that passes the same check; the
    manifest records the fused node counts, or why the plain graph was kept."""
    if not enabled:
        manifest.fusion[path.stem] = {"kept_plain": "not asked (fuse=False)"}
        return
    if not fusable(backbone):
        manifest.fusion[path.stem] = {"kept_plain": f"no fusions for {backbone.model_type!r} backbones"}
        return
    fused = path.with_name(f"{path.stem}.fused.onnx")
    counts = fuse_graph(path, fused, backbone)
    if not counts:
        manifest.fusion[path.stem] = {"kept_plain": "no fusion pattern matched"}
        return
    worst = _difference(fused, feeds, expected)
    if worst <= PARITY_TOLERANCE:
        os.replace(fused, path)
        manifest.fusion[path.stem] = {"fused": counts, "max_abs_difference": worst}
    else:
        fused.unlink()
        manifest.fusion[path.stem] = {"kept_plain": f"the fused graph differs by {worst:.2e}"}


def _write_bi_encoder(
    clf: ClassifierEngine,
    folder: Path,
    opset: int,
    manifest: OnnxManifest,
    trace: Any,
    check: Any,
    parity: dict,
    fuse: bool,
) -> None:
    vectors = _backend(clf).label_vectors
    assert vectors is not None
    if not vectors.cacheable:
        raise NotSupportedError(
            "mask_padding: pooled with padding (the official avg pooling), a label's vector depends on "
            "its batch; export a checkpoint served with mask_padding=True"
        )
    label_tokenizer: Any = vectors.tokens.tokenizer
    file = _tokenizer_file(folder, manifest, label_tokenizer, "label_tokenizer.json")
    manifest.label = TokenizerInfo(
        file,
        vectors.tokens.pad_id,
        list(label_tokenizer.all_special_ids),
        vectors.max_length,
    )
    label_graph = _LabelGraph(_model(clf), clf.mask_padding)
    label_axes = {
        "label_input_ids": {0: "labels", 1: "label_sequence"},
        "label_attention_mask": {0: "labels", 1: "label_sequence"},
        "label_vectors": {0: "labels"},
    }

    def label_inputs(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = pad_rows(vectors.tokens.ids(labels), vectors.tokens.pad_id)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    _export(label_graph, label_inputs(["sports", "world politics"]), folder / "label_encoder.onnx",
            ["label_input_ids", "label_attention_mask"], label_axes, opset)  # fmt: skip
    check_labels = sorted({label for labels in _LABELS for label in labels})
    ids, mask = label_inputs(check_labels)
    with torch.no_grad():
        expected_vectors = label_graph(ids, mask)
    feeds = {"label_input_ids": ids.numpy(), "label_attention_mask": mask.numpy()}
    _check(folder / "label_encoder.onnx", feeds, expected_vectors.numpy(), "label_encoder.onnx")
    label_backbone = _model(clf).label_encoder
    _fuse(
        folder / "label_encoder.onnx", feeds, expected_vectors.numpy(), label_backbone.config, manifest, fuse
    )
    parity.update(
        {f"labels.{k}": v for k, v in feeds.items()}, **{"labels.label_vectors": expected_vectors.numpy()}
    )
    manifest.label_width = int(expected_vectors.shape[1])

    text_graph = _BiTextGraph(_model(clf), clf.mask_padding)
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "label_vectors": {0: "labels"},
        "label_index": {0: "batch", 1: "slots"},
        "logits": {0: "batch", 1: "slots"},
    }

    def text_inputs(prepared: Any) -> tuple[torch.Tensor, ...]:
        ids, mask = pad_rows([p.input_ids for p in prepared.passes], clf.pad_id)
        per_pass = [clf.slot_labels(prepared, p) for p in prepared.passes]
        label_vectors, index = slot_inputs(prepared.label_table, per_pass)
        assert label_vectors is not None and index is not None
        return torch.from_numpy(ids), torch.from_numpy(mask), label_vectors.float(), index

    _export(text_graph, text_inputs(trace), folder / "model.onnx",
            ["input_ids", "attention_mask", "label_vectors", "label_index"], axes, opset)  # fmt: skip
    args = text_inputs(check)
    with torch.no_grad():
        expected = text_graph(*args).numpy()
    feeds = dict(
        zip(
            ["input_ids", "attention_mask", "label_vectors", "label_index"],
            [a.numpy() for a in args],
            strict=True,
        )
    )
    _check(folder / "model.onnx", feeds, expected, "model.onnx")
    _fuse(folder / "model.onnx", feeds, expected, _model(clf).encoder.config, manifest, fuse)
    parity.update({f"model.{k}": v for k, v in feeds.items()}, **{"model.logits": expected})


def _tokenizer_file(folder: Path, manifest: OnnxManifest, tokenizer: Any, own: str) -> str:
    """The file a second tokenizer of the export is read from: the text tokenizer's, where it
    tokenises every user string alike (the label encoder's or embedding's backbone is the text
    encoder's, less the model's special tokens), else its own, written as `own`."""
    backend = tokenizer.backend_tokenizer.to_str(pretty=True)
    if same_plain_tokenization((folder / manifest.text.file).read_text(), backend):
        return manifest.text.file
    (folder / own).write_text(backend)
    return own


def _write_embedding(
    clf: ClassifierEngine, folder: Path, opset: int, manifest: OnnxManifest, parity: dict, fuse: bool
) -> None:
    assert clf.blend is not None
    retriever: Any = clf.blend.retriever
    if not hasattr(retriever, "model"):
        raise ConfigError(
            "embedding_blend: its retriever is not an embedding backbone; it cannot be exported"
        )
    file = _tokenizer_file(folder, manifest, retriever.tokenizer, "embedding_tokenizer.json")
    width = retriever.window + len(retriever.prefix) + len(retriever.suffix)
    manifest.embedding = TokenizerInfo(
        file, retriever.pad_id, list(retriever.tokenizer.all_special_ids), width
    )
    manifest.embedding_blend = dict(_model(clf).config.embedding_blend)
    if fuse:
        eager_attention(retriever.model)
    graph = _EmbeddingGraph(retriever.model.float())
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "embedding": {0: "batch"},
    }

    def inputs(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = retriever.tokenizer(texts)["input_ids"]
        ids, mask = pad_rows(rows, retriever.pad_id)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    _export(
        graph, inputs(_TEXTS[:2]), folder / "embedding.onnx", ["input_ids", "attention_mask"], axes, opset
    )
    ids, mask = inputs([*_TEXTS, "This text is about sports."])
    with torch.no_grad():
        expected = graph(ids, mask).numpy()
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    _check(folder / "embedding.onnx", feeds, expected, "embedding.onnx")
    _fuse(folder / "embedding.onnx", feeds, expected, retriever.model.config, manifest, fuse)
    parity.update({f"embedding.{k}": v for k, v in feeds.items()}, **{"embedding.embedding": expected})
