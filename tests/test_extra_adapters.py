"""Several LoRA adapters on one classifier: each scores as its own folder would (in the library and
through the server), the least recently used is unloaded beyond the bound, and adapters that do not
fit the model are refused by name. The adapters come from `tests/adapter_models.py` (conftest)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from everylabel import Classifier, create_model
from everylabel.errors import ConfigError, InputError, NotSupportedError, UnknownAdapter
from everylabel.inference.calibration import Calibration
from everylabel.inference.extra_adapters import ExtraAdapters
from tests import oracle
from tests.adapter_models import LABELS, TEXTS, make_adapters


def assert_same(got: list, want: list, tolerance: float = 1e-5) -> None:
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        assert list(mine.scores) == list(theirs.scores) and mine.labels == theirs.labels
        assert mine.scores == pytest.approx(theirs.scores, abs=tolerance)


def test_each_adapter_on_a_plain_checkpoint_scores_as_its_own_folder(
    lora_adapters, lora_expected, backbone_dir, tmp_path
) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0, scorer_type="mlp")
    oracle.spread_weights(model, std=0.05)  # a fully fine-tuned model: its backbone is not the base's
    classifier = Classifier(model, tokenizer, device="cpu")
    own = classifier.classify(TEXTS, LABELS)
    for name, folder in lora_adapters.items():
        classifier.load_adapter(name, folder)
    assert classifier.adapters == ["a", "b"]
    for name in ("a", "b", None, "b", "a"):
        got = classifier.classify(TEXTS, LABELS, adapter=name)
        assert_same(got, lora_expected[name] if name else own, 1e-5 if name else 1e-6)
    assert_same(list(classifier.classify_iter(TEXTS, LABELS, adapter="b", window=2)), lora_expected["b"])
    # an adapter's own calibration (and its tuned thresholds) go with it, as from its folder
    calibrated = shutil.copytree(lora_adapters["b"], tmp_path / "calibrated")
    per_label = {"food": (0.5, 1.0)}
    Calibration("platt", "multi-label", 2.0, -0.5, per_label, {"sports": 0.2}).save(calibrated)
    classifier.load_adapter("calibrated", calibrated)
    want = Classifier.from_pretrained(calibrated, device="cpu").classify(TEXTS, LABELS)
    assert want[0].scores != pytest.approx(lora_expected["b"][0].scores, abs=1e-3)
    assert_same(classifier.classify(TEXTS, LABELS, adapter="calibrated"), want)
    # the three differ, so the equalities above say which weights ran
    firsts = {round(r[0].scores["sports"], 3) for r in (own, lora_expected["a"], lora_expected["b"])}
    assert len(firsts) == 3


def test_at_most_the_bound_is_loaded_and_an_unloaded_adapter_comes_back_exact(
    adapter_classifier, lora_expected
) -> None:
    # the model is itself an adapter folder (as the default model is): adapter a's
    assert adapter_classifier.backend.kind == "torch"  # "auto" picks torch for adapters
    for name in ("a", "b", "a", "b"):
        assert_same(adapter_classifier.classify(TEXTS, LABELS, adapter=name), lora_expected[name])
        assert adapter_classifier.adapter_status() == {"registered": ["a", "b"], "loaded": [name]}
    assert_same(adapter_classifier.classify(TEXTS, LABELS), lora_expected["a"])


def test_threads_calling_different_adapters_never_mix_them(adapter_classifier, lora_expected) -> None:
    """One adapter at a time in memory, four threads asking for two adapters: each call switches the
    model and runs it under one lock, so every answer is its own adapter's."""
    names = ["a", "b", "b", "a", "a", "b", "b", "a"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda name: adapter_classifier.classify(TEXTS[:2], LABELS, adapter=name), names)
        )
    for name, answer in zip(names, answers, strict=True):
        assert_same(answer, lora_expected[name][:2])


def test_an_unknown_adapter_is_an_input_error_naming_the_known_ones(
    adapter_classifier, lora_adapters
) -> None:
    with pytest.raises(UnknownAdapter) as error:
        adapter_classifier.prepare(TEXTS, LABELS, adapter="nope")
    assert error.value.field == "adapter"
    assert str(error.value) == "adapter: no adapter named 'nope' (this classifier has: 'a', 'b')"
    with pytest.raises(InputError, match="adapter: expected an adapter name or null, got 3"):
        adapter_classifier.classify(TEXTS, LABELS, adapter=3)
    with pytest.raises(InputError, match="name: an adapter named 'a' is already loaded"):
        adapter_classifier.load_adapter("a", lora_adapters["b"])
    with pytest.raises(InputError, match="name: expected an adapter name"):
        adapter_classifier.load_adapter("a b", lora_adapters["b"])
    assert adapter_classifier.adapters == ["a", "b"]


def test_adapters_that_do_not_fit_the_model_are_refused_by_name(
    adapter_classifier, lora_adapters, backbone_dir, tmp_path
) -> None:
    base = backbone_dir("bert")
    other = make_adapters(base, tmp_path, {"simple": 3}, scorer_type="simple")["simple"]
    with pytest.raises(ConfigError, match=r"differs from the model's in scorer_type; "):
        adapter_classifier.load_adapter("simple", other)
    moved = shutil.copytree(lora_adapters["b"], tmp_path / "moved")
    (moved / "everylabel_adapter.json").write_text(json.dumps({"base": "org/other-backbone", "format": 1}))
    with pytest.raises(
        ConfigError, match=f"trained on the backbone 'org/other-backbone', this model on '{base}'"
    ):
        adapter_classifier.load_adapter("moved", moved)
    with pytest.raises(ConfigError, match="not an everylabel adapter folder"):
        adapter_classifier.load_adapter("plain", base)
    no_rows = make_adapters(base, tmp_path, {"no-rows": 4}, special_rows=False)["no-rows"]
    with pytest.raises(ConfigError, match=r"does not train the special-token rows .* trains;"):
        adapter_classifier.load_adapter("no-rows", no_rows)
    assert adapter_classifier.adapters == ["a", "b"]  # nothing half-registered
    assert len(adapter_classifier.adapter_status()["loaded"]) == 1


def test_bi_encoders_and_onnx_take_no_extra_adapters(lora_adapters, backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), architecture_type="bi-encoder", dropout=0.0)
    with pytest.raises(NotSupportedError, match="a bi-encoder model takes no extra adapters"):
        Classifier(model, tokenizer, device="cpu").load_adapter("a", lora_adapters["a"])
    onnx = SimpleNamespace(kind="onnx")
    with pytest.raises(NotSupportedError, match="the onnx backend runs one exported model and takes no"):
        ExtraAdapters().load(onnx, "a", lora_adapters["a"], True, lambda config: None)
    with pytest.raises(InputError, match="adapters: not an option of the onnxruntime backend"):
        Classifier.from_pretrained(lora_adapters["a"], backend="onnx", adapters=dict(lora_adapters))


@pytest.mark.slow  # about 4 s: the encoder-decoder and decoder-kv models go through the same host
@pytest.mark.parametrize(("architecture", "family"), [("encoder-decoder", "t5"), ("decoder-kv", "qwen3")])
def test_the_other_architectures_take_adapters(backbone_dir, tmp_path, architecture, family) -> None:
    folders = make_adapters(backbone_dir(family), tmp_path, {"x": 1, "y": 2}, architecture_type=architecture)
    want = {
        name: Classifier.from_pretrained(f, device="cpu").classify(TEXTS, LABELS)
        for name, f in folders.items()
    }
    classifier = Classifier.from_pretrained(
        folders["x"], device="cpu", adapters=folders, max_loaded_adapters=1
    )
    for name in ("y", "x", "y"):
        assert_same(classifier.classify(TEXTS, LABELS, adapter=name), want[name])


def test_the_server_answers_each_adapter_as_the_library(adapter_classifier, lora_expected) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from everylabel.serving import create_app
    from tests.test_serve import assert_same as assert_answer
    from tests.test_serve import wait_for

    with TestClient(create_app(lambda: adapter_classifier)) as client:
        wait_for(lambda: client.get("/health").status_code == 200)
        for name in ("b", "a", None, "b"):  # one loaded at once: each switch reads the adapter again
            response = client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS, "adapter": name})
            assert response.status_code == 200
            assert_answer(response.json()["results"], lora_expected[name or "a"])
        info = client.get("/info").json()
        assert info["adapters"] == {"registered": ["a", "b"], "loaded": ["b"]}
        unknown = client.post("/v1/classify", json={"texts": TEXTS, "labels": LABELS, "adapter": "c"})
        assert unknown.status_code == 404
        assert unknown.json() == {
            "detail": "adapter: no adapter named 'c' (this classifier has: 'a', 'b')",
            "field": "adapter",
        }
        schema = client.get("/openapi.json").json()["paths"]["/v1/classify"]["post"]["requestBody"]
        assert "adapter" in schema["content"]["application/json"]["schema"]["properties"]


def test_the_serve_command_reads_its_adapters(lora_adapters, tmp_path, capsys) -> None:
    from everylabel.cli import build_parser
    from everylabel.serving.command import check_adapter_options

    parser = build_parser()
    a, b = (str(lora_adapters[name]) for name in ("a", "b"))
    args = parser.parse_args(
        ["serve", "--adapter", f"a={a}", "--adapter", f"org/b-v2={b}", "--max-loaded-adapters", "1"]
    )
    assert args.adapter == [("a", a), ("org/b-v2", b)] and args.max_loaded_adapters == 1
    check_adapter_options(args)
    for bad, message in (
        (f"{a}", "expected NAME=DIR"),
        ("a=", "expected NAME=DIR"),
        (f"two words={a}", "'two words' is not an adapter name"),
        (f"a={tmp_path / 'missing'}", "does not exist"),
    ):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["serve", "--adapter", bad])
        assert exit_.value.code == 2
        assert "argument --adapter: " in (err := capsys.readouterr().err) and message in err
    for argv, message in (
        (["--adapter", f"a={a}", "--adapter", f"a={b}"], "--adapter: the name 'a' is given twice"),
        (["--max-loaded-adapters", "2"], "--max-loaded-adapters: bounds the adapters of --adapter"),
        (["--adapter", f"a={a}", "--max-loaded-adapters", "0"], "--max-loaded-adapters: must be >= 1"),
        (["--adapter", f"a={a}", "--backend", "onnx"], "--adapter: adapters run on the torch backend"),
    ):
        with pytest.raises(InputError, match=message):
            check_adapter_options(parser.parse_args(["serve", *argv]))
