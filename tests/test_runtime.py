"""Device and dtype choices, and the overflow check of half-precision logits."""

from __future__ import annotations

import pytest
import torch

from everylabel import Classifier, create_model, runtime
from everylabel.errors import NumericalError
from everylabel.runtime import CPU_BF16_VARIABLE, resolve_dtype


def test_auto_picks_bf16_only_where_the_gpu_has_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []

    def bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return including_emulation  # an older GPU: bf16 only by emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    monkeypatch.setattr(torch.cuda, "device", lambda device: _NoDevice())
    cuda = torch.device("cuda")
    assert resolve_dtype("auto", cuda) == torch.float16
    assert asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_dtype("auto", cuda) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16


def test_auto_picks_bf16_on_a_cpu_only_where_it_computes_bf16_in_hardware(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu = torch.device("cpu")
    monkeypatch.delenv(CPU_BF16_VARIABLE)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f", "avx512bw"}))
    assert resolve_dtype("auto", cpu) == torch.float32  # AVX-512 without BF16: emulated, slower
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"fp", "asimd", "bf16"}))  # Arm
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setenv(CPU_BF16_VARIABLE, "0")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16  # asked by name: always
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setenv(CPU_BF16_VARIABLE, "1")
    assert resolve_dtype("auto", cpu) == torch.bfloat16


class _NoDevice:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="module")
def half_classifier(backbone_dir) -> Classifier:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0)
    return Classifier(model, tokenizer, device="cpu", dtype="fp16")


def test_overflowing_logits_raise_a_clear_error(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0)
    with torch.no_grad():  # projections large enough that text . label passes float16's 65504
        model.model.text_projector.linear_2.weight.mul_(1e4)
        model.model.classes_projector.linear_2.weight.mul_(1e4)
    clf = Classifier(model, tokenizer, device="cpu", dtype="fp16")
    with pytest.raises(NumericalError, match=r"overflowed in float16.*dtype='fp32'"):
        clf.classify(["one text", "two texts"], ["a", "b"])


def test_finite_half_precision_scores_follow_fp32(backbone_dir, half_classifier: Classifier) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), dropout=0.0)
    model.load_state_dict({k: v.float() for k, v in half_classifier.model.state_dict().items()})
    full = Classifier(model, tokenizer, device="cpu", dtype="fp32").classify(["one text"], ["a", "b"])[0]
    half = half_classifier.classify(["one text"], ["a", "b"])[0]
    assert half.scores == pytest.approx(full.scores, abs=1e-2)
