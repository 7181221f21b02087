"""Shared fixtures: offline tokenizers, tiny backbones built from configs, a seeded torch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Exports built on first use go to a cache of this test session, not the user's (subprocesses too).
os.environ["EVERYLABEL_CACHE"] = tempfile.mkdtemp(prefix="everylabel-test-cache-")
# dtype="auto" stays fp32 on any CPU (the oracle comparisons are fp32), bf16 CPU or not; the rule
# itself is tested in test_runtime.py.
os.environ["EVERYLABEL_CPU_BF16"] = "0"

from tests import backbones


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory):
    """backbone_dir(family) -> folder with a tiny random backbone and its tokenizer, built once."""
    built: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in built:
            built[family] = backbones.save_tiny_backbone(family, tmp_path_factory.mktemp(family))
        return built[family]

    return make


@pytest.fixture(scope="session")
def lora_adapters(backbone_dir, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two LoRA adapter folders "a" and "b" on the tiny BERT backbone (`tests/adapter_models.py`)."""
    from tests.adapter_models import make_adapters

    return make_adapters(backbone_dir("bert"), tmp_path_factory.mktemp("lora"), {"a": 1, "b": 2})


@pytest.fixture(scope="session")
def lora_expected(lora_adapters: dict[str, Path]) -> dict[str, list]:
    """Each adapter's results on `adapter_models.TEXTS` and `LABELS`, from its own folder."""
    from everylabel import Classifier
    from tests.adapter_models import LABELS, TEXTS

    return {
        name: Classifier.from_pretrained(folder, device="cpu").classify(TEXTS, LABELS)
        for name, folder in lora_adapters.items()
    }


@pytest.fixture(scope="session")
def adapter_classifier(lora_adapters: dict[str, Path]):
    """A classifier on adapter "a"'s folder with both adapters registered, at most one loaded at once."""
    from everylabel import Classifier

    return Classifier.from_pretrained(
        lora_adapters["a"], device="cpu", adapters=dict(lora_adapters), max_loaded_adapters=1
    )
