"""Checkpoint folders of a training run: what resume needs, written so that a kill never breaks them.

A checkpoint holds the weights, optimizer, scheduler, RNG, data position and the config it was
made with, plus a snapshot of `best/` as it stood (hard links: free on disk). Resuming restores
that snapshot, so `best/` never holds a model newer than the checkpoint the run continues from,
and refuses a changed config (batch size, data, steps, model, ...) unless forced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import TrainConfigError
from .data import Record

STATE_FILE = "trainer_state.json"
BEST = "best"
# Keys that may change between a run and its resume without changing what the run computes;
# the training records are compared by content (`data_fingerprint`), not by file name.
RESUME_SAFE_KEYS = frozenset(
    {
        "output_dir",
        "device",
        "progress",
        "log_every",
        "eval_every",
        "save_every",
        "keep_checkpoints",
        "train_data",
        "skip_invalid",
    }
)
# Keys added after checkpoints were first written, with the value that computes what a checkpoint
# without the key computed: such a checkpoint resumes under that value.
ADDED_KEYS: dict[str, Any] = {
    "order_consistency": 0.0,
    "order_consistency_gap": "absolute",
    "order_consistency_dropout": True,
    "aug_examples_per_label": 0,
}


def data_fingerprint(records: Sequence[Record]) -> str:
    """A hash of the training records (text, labels, targets, prompt, examples), in order."""
    digest = hashlib.sha256()
    for record in records:
        row = [record.text, record.all_labels, record.true_labels, record.prompt, record.examples]
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def check_resumable(state: dict[str, Any], config: dict[str, Any], fingerprint: str, folder: Path) -> None:
    """Raise `TrainConfigError` naming the first key whose value differs from the checkpoint's."""
    saved = state.get("config", {})
    current = json.loads(json.dumps(config))  # tuples -> lists, as the checkpoint stored them
    for key in sorted(set(saved) | set(current)):
        if key in RESUME_SAFE_KEYS or saved.get(key, ADDED_KEYS.get(key)) == current.get(key):
            continue
        raise TrainConfigError(
            f"{key}: the checkpoint {folder} was made with {saved.get(key)!r}, this run has "
            f"{current.get(key)!r}; resuming would not continue the same run (force it with "
            "--force-resume, or start over with --no-resume or a new output_dir)"
        )
    if state.get("data_fingerprint") not in (None, fingerprint):
        raise TrainConfigError(
            f"train_data: the records differ from those the checkpoint {folder} was trained on; "
            "resuming would not continue the same run (force it with --force-resume)"
        )


def list_checkpoints(output_dir: Path) -> list[Path]:
    found = [p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def find_checkpoint(output_dir: Path, resume: str | bool | None) -> Path | None:
    """The checkpoint to resume from: the newest for True/"auto", a given folder, or None."""
    if resume is False or resume is None:
        return None
    if resume is True or resume == "auto":
        existing = list_checkpoints(output_dir)
        return existing[-1] if existing else None
    path = Path(resume)
    if not (path / STATE_FILE).exists():
        raise TrainConfigError(f"resume: {path} is not a checkpoint folder")
    return path


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def link_tree(source: Path, target: Path) -> None:
    """Copy a folder as hard links (a plain copy where the file system has none)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def replace_folder(partial: Path, target: Path) -> None:
    """Put a fully written `partial` folder in place of `target`.

    `target` is removed first (never written into), so hard-linked snapshots of it stay as they were.
    """
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def snapshot_best(output_dir: Path, checkpoint: Path) -> None:
    """Keep the current `best/` inside a checkpoint being written."""
    best = output_dir / BEST
    if best.is_dir():
        link_tree(best, checkpoint / BEST)


def restore_best(output_dir: Path, checkpoint: Path) -> None:
    """Make `best/` what it was when `checkpoint` was written (nothing, if it did not exist yet)."""
    best = output_dir / BEST
    shutil.rmtree(best, ignore_errors=True)
    if (checkpoint / BEST).is_dir():
        partial = output_dir / f".partial-{BEST}"
        shutil.rmtree(partial, ignore_errors=True)
        link_tree(checkpoint / BEST, partial)
        partial.rename(best)


def trim_log(path: Path, step: int) -> None:
    """Keep the log lines of steps up to `step`; a torn last line (a kill mid-append) is dropped."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("step", step + 1) <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
