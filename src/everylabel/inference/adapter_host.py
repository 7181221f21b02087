"""Several LoRA adapters on one backbone, switched per batch: what `Classifier.load_adapter` runs.

One model (the host) is built on the adapters' base backbone, and every adapter's LoRA weights are
loaded into its peft backbone under their own names; a full backbone is never copied per adapter.
What else an adapter changes is small and kept beside it: its head weights and the rows of the
three special-token embeddings (`head.safetensors`, see `adapters.save_adapter`). Switching to an
adapter sets peft's active adapter, copies its head weights in and writes its rows into the
embedding matrix; `active` does that and the model call under one lock, so threads never mix
adapters. At most `max_loaded` adapters are held at once: the least recently used is unloaded and
read again from its folder when it is next asked for.

The host is apart from the classifier's own model, which no adapter call touches (its weights may
be fully fine-tuned, where an adapter needs the base backbone as it was pretrained).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..adapters import _ADAPTED, _BACKBONE_PREFIXES, ADAPTER_MARKER, is_adapter_folder, load_adapter
from ..config import BI_ENCODERS, GLiClassConfig
from ..errors import ConfigError, InputError, NotSupportedError
from ..loading import quiet_loading
from ..modeling.model import GLiClassModel
from ..paths import resolve_path
from .extra_adapters import MAX_LOADED_ADAPTERS

# Config keys that may differ between a model and its adapters: names, versions and settings of
# training only. The embedding blend is each adapter's own (the engine applies it per adapter).
FREE_KEYS = frozenset(
    {
        "_name_or_path",
        "transformers_version",
        "architectures",
        "dtype",
        "torch_dtype",
        "encoder_model_name",  # checked as the base backbone, by its resolved path
        "label_model_name",
        "embedding_blend",
        "dropout",
        "scorer_attn_dropout",
        "calibrator_dropout",
        "focal_loss_alpha",
        "focal_loss_gamma",
        "focal_loss_reduction",
        "label_smoothing",
        "contrastive_loss_coef",
        "initializer_range",
        "logit_scale_init_value",
        "ignore_index",
        "problem_type",
        "everylabel_config_version",
    }
)
FREE_BACKBONE_KEYS = frozenset(
    {"_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype"}
)


@dataclass(frozen=True)
class AdapterFolder:
    """A registered adapter: where it is, its config (checked against the model's), and whether its
    LoRA trains the special-token rows (peft's `trainable_token_indices`)."""

    folder: Path
    config: GLiClassConfig
    trains_token_rows: bool


@dataclass
class _Loaded:
    """An adapter held in memory: its name in peft, its head weights and special-token rows."""

    peft_name: str
    head: dict[str, torch.Tensor]
    rows: torch.Tensor | None  # (3, hidden) rows of <<LABEL>>, <<SEP>>, <<EXAMPLE>>


def read_adapter_folder(folder: str | os.PathLike[str], model_config: GLiClassConfig) -> AdapterFolder:
    """An adapter folder's config, refused (`ConfigError`) unless its adapter fits the model's:
    an everylabel adapter folder, on the same base backbone, with a config that differs only in
    `FREE_KEYS`, of an architecture that takes extra adapters."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"adapter {path}: the folder does not exist")
    if not is_adapter_folder(path):
        raise ConfigError(
            f"adapter {path}: not an everylabel adapter folder (no {ADAPTER_MARKER}); extra adapters are "
            "LoRA adapters written by save_adapter or by training with LoRA"
        )
    refuse_architecture(model_config.architecture_type)
    base = json.loads((path / ADAPTER_MARKER).read_text()).get("base")
    model_base = model_config.encoder_model_name
    if not base or not same_backbone(str(base), model_base):
        raise ConfigError(
            f"adapter {path}: it was trained on the backbone {base!r}, this model on {model_base!r}; "
            "an adapter applies only to the backbone it was trained on"
        )
    config = GLiClassConfig.from_pretrained(path)
    differing = config_differences(model_config, config)
    if differing:
        raise ConfigError(
            f"adapter {path}: its config differs from the model's in {', '.join(differing)}; an extra "
            "adapter must share the model's architecture, pooling, scorer and input layout"
        )
    peft_config = path / _ADAPTED[_backbone_attribute(config)] / "adapter_config.json"
    if not peft_config.is_file():
        raise ConfigError(f"adapter {path}: {peft_config.relative_to(path)} is missing")
    trains_rows = bool(json.loads(peft_config.read_text()).get("trainable_token_indices"))
    return AdapterFolder(path, config, trains_rows)


def _backbone_attribute(config: GLiClassConfig) -> str:
    """The attribute of the model that holds the peft backbone (see `GLiClassModel.backbone_name`)."""
    if config.architecture_type == "decoder-kv":
        return "decoder_model"
    return "encoder_decoder_model" if config.uses_encoder_decoder else "encoder_model"


def check_max_loaded(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError("max_loaded_adapters", f"expected a number of adapters >= 1, got {value!r}")


def refuse_architecture(architecture: str) -> None:
    """Bi-encoders take no extra adapters: their label vectors are cached per model."""
    if architecture in BI_ENCODERS:
        raise NotSupportedError(
            f"adapters: a {architecture} model takes no extra adapters (its label encoder's vectors are "
            "cached per model); open each adapter folder with Classifier.from_pretrained instead"
        )


def same_backbone(a: str, b: str | None) -> bool:
    """Whether two backbone names (packaged names, hub ids or folders) name the same backbone."""
    if b is None:
        return False
    first, second = resolve_path(a), resolve_path(b)
    if os.path.exists(first) and os.path.exists(second):
        return os.path.samefile(first, second)
    return first == second


def config_differences(model: GLiClassConfig, adapter: GLiClassConfig) -> list[str]:
    """The config keys (nested ones as `encoder_config.key`) where an adapter differs from the model
    beyond `FREE_KEYS`. {"scorer_type": "mlp"} vs {"scorer_type": "simple"} -> ["scorer_type"]."""
    ours, theirs = model.to_dict(), adapter.to_dict()
    differing = []
    for key in sorted(set(ours) | set(theirs)):
        if key in FREE_KEYS:
            continue
        mine, other = ours.get(key), theirs.get(key)
        if isinstance(mine, dict) and isinstance(other, dict) and key.endswith("_config"):
            for inner in sorted(set(mine) | set(other)):
                if inner not in FREE_BACKBONE_KEYS and mine.get(inner) != other.get(inner):
                    differing.append(f"{key}.{inner}")
        elif mine != other:
            differing.append(key)
    return differing


class AdapterHost:
    """Named LoRA adapters on one host model on `device` in `dtype` (see the module doc).

    `register` checks and loads an adapter; `active(name)` switches to it and yields the model,
    holding the lock until the caller's model call is done."""

    def __init__(
        self,
        model_config: GLiClassConfig,
        device: torch.device,
        dtype: torch.dtype,
        max_loaded: int = MAX_LOADED_ADAPTERS,
    ) -> None:
        check_max_loaded(max_loaded)
        refuse_architecture(model_config.architecture_type)
        self.model_config = model_config
        self.device = device
        self.dtype = dtype
        self.max_loaded = max_loaded
        self.model: GLiClassModel | None = None  # built with the first adapter
        self._registered: dict[str, AdapterFolder] = {}
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self._loaded_names: tuple[str, ...] = ()  # a copy to read without the lock
        self._targets: dict[str, torch.Tensor] = {}  # the host's head weights, by state-dict key
        self._active: str | None = None
        self._count = 0  # peft names given so far
        self._lock = threading.Lock()

    @property
    def registered(self) -> list[str]:
        return list(self._registered)

    @property
    def loaded(self) -> list[str]:
        """The adapters held in memory now, least recently used first (read without waiting for a
        model call in progress)."""
        return list(self._loaded_names)

    def register(self, name: str, folder: str | os.PathLike[str]) -> AdapterFolder:
        """Check the folder (`read_adapter_folder`) and load its adapter (unloading the least recently
        used beyond `max_loaded`); nothing is registered if either fails."""
        if name in self._registered:
            raise InputError(
                "name", f"an adapter named {name!r} is already loaded; give this one another name"
            )
        entry = read_adapter_folder(folder, self.model_config)
        others = [
            other for other in self._registered.values() if other.trains_token_rows != entry.trains_token_rows
        ]
        if others:
            kinds = ("trains", "does not train")
            mine, theirs = kinds[not entry.trains_token_rows], kinds[entry.trains_token_rows]
            raise ConfigError(
                f"adapter {entry.folder}: its LoRA {mine} the special-token rows (trainable_token_indices) "
                f"and {others[0].folder}'s {theirs}; peft holds adapters of one kind only in one model"
            )
        with self._lock:
            self._registered[name] = entry
            try:
                self._load(name)
            except BaseException:
                del self._registered[name]
                raise
        return entry

    def forget(self, name: str) -> None:
        """Unregister an adapter and unload it."""
        with self._lock:
            if name in self._loaded:
                self._unload(name)
            self._registered.pop(name, None)

    @contextlib.contextmanager
    def active(self, name: str) -> Iterator[GLiClassModel]:
        """The host switched to adapter `name` (read again from its folder if it was unloaded), locked
        until the block ends."""
        if name not in self._registered:
            raise InputError("adapter", f"no adapter named {name!r}")
        with self._lock:
            self._switch(name)
            assert self.model is not None
            yield self.model

    # -- under the lock ------------------------------------------------------------------------------

    def _switch(self, name: str) -> None:
        loaded = self._loaded.get(name) or self._load(name)
        self._loaded.move_to_end(name)
        self._loaded_names = tuple(self._loaded)
        if self._active == name:
            return
        for backbone in self._peft_backbones():
            backbone.set_adapter(loaded.peft_name)
        with torch.no_grad():
            for key, value in loaded.head.items():
                self._targets[key].copy_(value)
            if loaded.rows is not None:
                self._embedding_matrix()[list(self.model_config.special_token_ids())] = loaded.rows
        self._active = name

    def _load(self, name: str) -> _Loaded:
        """Read an adapter in, then unload the least recently used beyond `max_loaded` (after, not
        before: peft cannot add an adapter to a model left with none)."""
        folder = self._registered[name].folder
        self._count += 1
        peft_name = f"adapter_{self._count}"
        first = self.model is None
        with quiet_loading():
            if self.model is None:
                self.model = self._build(folder, peft_name)
            else:
                for attribute, backbone in self._named_peft_backbones():
                    backbone.load_adapter(
                        str(folder / _ADAPTED[attribute]),
                        adapter_name=peft_name,
                        torch_device=str(self.device),
                    )
                torch.nn.Module.to(self.model, device=self.device, dtype=self.dtype)
        try:
            head, rows = self._read_head(folder)
        except BaseException:  # leave the host as it was
            if first:
                self.model, self._targets = None, {}
            else:
                for backbone in self._peft_backbones():
                    backbone.delete_adapter(peft_name)
            raise
        loaded = self._loaded[name] = _Loaded(peft_name, head, rows)
        for backbone in self._peft_backbones():  # peft runs the new one: the others may be unloaded
            backbone.set_adapter(peft_name)
        self._active = None  # its head and rows are not in yet
        while len(self._loaded) > self.max_loaded:
            self._unload(next(iter(self._loaded)))
        self._loaded_names = tuple(self._loaded)
        return loaded

    def _build(self, folder: Path, peft_name: str) -> GLiClassModel:
        """The host model, built on the base backbone with its first adapter."""
        model, _ = load_adapter(folder, adapter_name=peft_name)
        torch.nn.Module.to(model, device=self.device, dtype=self.dtype)
        self._targets = {
            key: value
            for key, value in model.state_dict(keep_vars=True).items()
            if not key.startswith(_BACKBONE_PREFIXES)
        }
        return model.eval()

    def _read_head(self, folder: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        head = load_file(str(folder / "head.safetensors"))
        rows = head.pop("special_token_embeddings", None)
        missing = sorted(set(self._targets) - set(head))
        unexpected = sorted(set(head) - set(self._targets))
        if missing or unexpected:
            raise ConfigError(
                f"adapter {folder}: head.safetensors does not fit the model (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )
        moved = {
            key: value.to(self._targets[key].device, self._targets[key].dtype) for key, value in head.items()
        }
        if rows is not None:
            rows = rows.to(self.device, self.dtype)
        return moved, rows

    def _unload(self, name: str) -> None:
        loaded = self._loaded.pop(name)
        self._loaded_names = tuple(self._loaded)
        if not self._loaded:  # peft takes no adapter into a model left with none: the next is built anew
            self.model, self._targets, self._active = None, {}, None
            return
        for backbone in self._peft_backbones():
            backbone.delete_adapter(loaded.peft_name)
        if self._active == name:
            self._active = None

    def _named_peft_backbones(self) -> list[tuple[str, Any]]:
        """The peft-wrapped backbone (bi-encoders, with a second one, take no extra adapters)."""
        assert self.model is not None
        name = self.model.backbone_name
        return [(name, getattr(self.model.model, name))]

    def _peft_backbones(self) -> list[Any]:
        return [backbone for _, backbone in self._named_peft_backbones()]

    def _embedding_matrix(self) -> torch.Tensor:
        """The base embedding matrix, under peft's wrapper of trained token rows if it has one."""
        assert self.model is not None
        peft: Any = self.model.encoder
        layer = peft.get_base_model().get_input_embeddings()
        while hasattr(layer, "token_adapter"):
            layer = layer.token_adapter.base_layer
        return layer.weight
