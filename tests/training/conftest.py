"""Fixtures of the training tests: a toy task written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.toy import write_toy


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("toy")
    return write_toy(folder / "train.jsonl", 96, seed=0), write_toy(folder / "eval.jsonl", 48, seed=1)
