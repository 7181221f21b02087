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
