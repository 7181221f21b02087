"""The one resolver: which runtime runs a model, and the classifier and retrievers over it.

`Classifier.from_pretrained` (which the CLI, the server, batch mode and Ray all call) opens models
through `open_classifier`, so "auto" means one thing everywhere (`resolve_backend`), options are
checked for the runtime chosen (`check_options`), and `open_retriever` resolves a shortlist's
retriever the same way on both runtimes. Deciding imports neither torch nor transformers; the
ONNX path runs without them once its export exists.

This module sits above `inference/` and `onnx/`. `Classifier.from_pretrained` and
`Classifier.retriever` import it when called: the one upward import of the package, because the
single user-facing entry must reach every runtime, and the ONNX runtime with its export cache
(building an export needs the torch runtime) lives above the engine. It never imports the
`Classifier` module back: the class to build is handed in.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .errors import InputError, MissingDependencyError
from .paths import DEFAULT_MODEL_NAME, MINILM_NAME, PathLike, resolve_path

if TYPE_CHECKING:
    from .inference.backend import Backend
    from .inference.engine import ClassifierEngine
    from .inference.shortlists import Retriever

Engine = TypeVar("Engine", bound="ClassifierEngine")

BACKENDS: Final = ("auto", "torch", "onnx")
# Options of `Classifier` that both runtimes take; `TORCH_OPTIONS` and `ONNX_OPTIONS` only one.
ENGINE_OPTIONS: Final = frozenset(
    {
        "max_length",
        "batch_size",
        "max_batch_tokens",
        "min_text_tokens",
        "descriptions",
        "label_cache_size",
        "embedding_blend",
        "calibration",
    }
)
# `adapters` ({name: folder}) are registered with `load_adapter` once the classifier is built.
TORCH_OPTIONS: Final = frozenset({"mask_padding", "label_tokenizer", "adapters", "max_loaded_adapters"})
ONNX_OPTIONS: Final = frozenset({"threads"})
# What a runtime builds itself with (the rest are the engine's).
RUNTIME_OPTIONS: Final = (TORCH_OPTIONS - {"adapters"}) | ONNX_OPTIONS | {"label_cache_size"}
FP32_NAMES: Final = ("auto", "fp32", "float32", "torch.float32")


def installed(package: str) -> bool:
    """Whether `package` can be imported (found, without importing it)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a finder that knows it is missing, or a broken install
        return False


def onnx_available() -> bool:
    return installed("onnxruntime")


def torch_available() -> bool:
    return installed("torch")


def is_export(model: PathLike) -> bool:
    from .onnx.manifest import is_onnx_export

    return os.path.isdir(resolve_path(model)) and is_onnx_export(resolve_path(model))


def resolve_backend(
    model: PathLike,
    backend: str = "auto",
    device: Any = "auto",
    dtype: Any = "auto",
    options: Mapping[str, Any] | None = None,
) -> str:
    """ "torch" or "onnx" for `model`. "auto", the same everywhere:

    - an ONNX export folder (`everylabel export onnx`) runs on onnxruntime;
    - the default model runs on onnxruntime (its export ships packed inside the package,
      `onnx/packed.py`) where that gives torch's answers to within its int8 weights, faster:
      onnxruntime is installed, the run is on a CPU (`device` "cpu", or "auto" on a machine without
      an NVIDIA GPU), in fp32, with no torch-only option (`TORCH_OPTIONS`); and always where torch
      is not installed (the base install);
    - any other checkpoint runs on torch.

    "onnx" runs a checkpoint from its cached export; "torch" refuses an export. A choice of torch
    without torch installed is a `MissingDependencyError` naming the extra.
    """
    if backend not in BACKENDS:
        raise InputError("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    device, dtype = str(device), str(dtype)
    if is_export(model):
        if backend == "torch":
            raise InputError("backend", f"{model} is an ONNX export; the torch backend needs a checkpoint")
        choice = "onnx"
    elif backend == "auto":
        on_cpu = device == "cpu" or (device == "auto" and shutil.which("nvidia-smi") is None)
        torch_only = bool(TORCH_OPTIONS & set(options or {}))
        fast = str(model) == DEFAULT_MODEL_NAME and onnx_available() and dtype in FP32_NAMES
        only_onnx = str(model) == DEFAULT_MODEL_NAME and not torch_available()
        choice = "onnx" if only_onnx or (fast and on_cpu and not torch_only) else "torch"
    else:
        choice = backend
    if choice == "torch" and not torch_available():
        raise MissingDependencyError(
            f"model {model}: runs on torch, which is not installed (pip install 'everylabel[torch]'); "
            "the base install runs the default model and ONNX exports"
        )
    if choice == "onnx":
        if device not in ("auto", "cpu"):
            raise InputError("device", f"the ONNX backend runs on the CPU, got {device!r}")
        if dtype not in FP32_NAMES:
            raise InputError("dtype", f"the ONNX backend runs in the export's precision, got {dtype!r}")
        if not onnx_available():
            raise MissingDependencyError(
                "backend onnx: needs onnxruntime and tokenizers (pip install everylabel)"
            )
    return choice


def check_options(backend: str, options: Mapping[str, Any]) -> None:
    """Every option is one the chosen runtime takes; else an `InputError` naming it."""
    own = TORCH_OPTIONS if backend == "torch" else ONNX_OPTIONS
    other = ONNX_OPTIONS if backend == "torch" else TORCH_OPTIONS
    for name in options:
        if name in ENGINE_OPTIONS or name in own:
            continue
        if name in other:
            runtime = "onnxruntime" if backend == "onnx" else "torch"
            raise InputError(
                name, f"not an option of the {runtime} backend (it takes {', '.join(sorted(own))})"
            )
        raise InputError(name, "unknown option")


def open_classifier(
    cls: type[Engine],
    model: PathLike,
    *,
    backend: str = "auto",
    device: Any = "auto",
    dtype: Any = "auto",
    **options: Any,
) -> Engine:
    """An instance of `cls` (`Classifier`, whose `from_pretrained` calls this) over `model` (a
    checkpoint folder or hub id, an ONNX export, "default") on the runtime `resolve_backend` picks,
    with `options` checked for it (`check_options`); `adapters` ({name: folder}) are then loaded
    with `load_adapter`."""
    choice = resolve_backend(model, backend, device, dtype, options)
    check_options(choice, options)
    adapters = options.pop("adapters", None) or {}
    if not isinstance(adapters, Mapping):
        raise InputError("adapters", f"expected a mapping of adapter names to folders, got {adapters!r}")
    runtime = {name: options.pop(name) for name in list(options) if name in RUNTIME_OPTIONS}
    if choice == "onnx":  # never with adapters: a torch option, so "auto" picks torch for them
        from .onnx.backend import onnx_folder
        from .onnx.runtime import OnnxBackend

        onnx_backend = OnnxBackend(onnx_folder(model), **runtime)
        return cls.from_backend(onnx_backend, **_calibration(onnx_backend.folder, options))
    engine = cls.from_backend(_torch_backend(model, device, dtype, runtime), **_calibration(model, options))
    for name, folder in adapters.items():
        engine.load_adapter(name, folder)
    return engine


def _torch_backend(model: PathLike, device: Any, dtype: Any, options: dict[str, Any]) -> Backend:
    from .inference.torch_backend import TorchBackend
    from .loading import load_model
    from .runtime import resolve_device, resolve_dtype
    from .tokenization import load_label_tokenizer

    resolved = resolve_device(device)
    # The model's own adapters are merged (its extra adapters run on a host model of their own).
    gliclass, tokenizer = load_model(model, dtype=resolve_dtype(dtype, resolved), merge_adapters=True)
    if gliclass.config.is_bi_encoder and "label_tokenizer" not in options:
        options["label_tokenizer"] = load_label_tokenizer(gliclass.config, str(resolve_path(model)))
    return TorchBackend(gliclass, tokenizer, device=resolved, dtype=dtype, **options)


def _calibration(model: PathLike, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with `calibration` resolved against the model's folder (default True: the one
    stored there, if any; an export carries its checkpoint's)."""
    from .inference.calibration import choose_calibration

    return {
        **options,
        "calibration": choose_calibration(options.get("calibration", True), resolve_path(model)),
    }


def open_retriever(engine: ClassifierEngine, spec: Any = None) -> Retriever:
    """What ranks a shortlist's labels for `engine`, resolved the same way on every runtime:

    - an object with `.rank`: itself; a bi-encoder classifier: its own scores;
    - None: the model itself if it is a plain bi-encoder, else the sentence-embedding backbone
      all-MiniLM-L6-v2 (packaged);
    - a name or path: a bi-encoder checkpoint or ONNX export is opened with `open_classifier`
      (backend "auto", the engine's device) and ranks with its own scores; anything else is a
      sentence-embedding backbone.

    A sentence-embedding backbone runs on the engine's own runtime where that has it (the ONNX
    export of a model with an embedding blend holds its backbone's graph), else on torch.
    """
    from .inference.bi_encoder_retrieval import BiEncoderRetriever
    from .inference.engine import ClassifierEngine
    from .inference.shortlists import LABEL_TEMPLATE

    if hasattr(spec, "rank"):
        return spec
    if isinstance(spec, ClassifierEngine):
        return BiEncoderRetriever(spec)
    if spec is None and engine.architecture_type == "bi-encoder":
        return BiEncoderRetriever(engine, "this model")
    if spec is not None and not isinstance(spec, str | os.PathLike):
        raise InputError("retriever", f"expected a name, a path or an object with .rank, got {spec!r}")
    name = os.fspath(spec) if spec is not None else MINILM_NAME
    device = engine.backend.describe()["device"]
    if _is_gliclass(name):
        return BiEncoderRetriever(open_classifier(ClassifierEngine, name, device=device), name)
    own = engine.backend.embedding_retriever(name, LABEL_TEMPLATE)
    if own is not None:
        return own
    if not torch_available():
        raise MissingDependencyError(
            f"retriever {name}: a sentence-embedding backbone runs on torch, which is not installed "
            "(pip install 'everylabel[torch]')"
        )
    from .inference.retrieval import EmbeddingRetriever

    return EmbeddingRetriever(name, device=device)


def _is_gliclass(name: str) -> bool:
    """A GLiClass checkpoint or export (its config or manifest says so), local or on the hub."""
    folder = Path(resolve_path(name)) if name != MINILM_NAME else None
    if folder is not None and folder.is_dir():
        if is_export(folder):
            return True
        config = folder / "config.json"
        return config.is_file() and json.loads(config.read_text()).get("model_type") == "GLiClass"
    if folder is None or not torch_available():
        return False
    from .loading import is_gliclass_checkpoint

    return is_gliclass_checkpoint(name)
