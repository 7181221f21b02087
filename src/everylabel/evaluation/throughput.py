"""Throughput on the paper's grid: labels x text length x batch size, systems interleaved per point.

Systems: everylabel (`Classifier`), the official `gliclass` pipeline on the same checkpoint, and a
cross-encoder through transformers' zero-shot pipeline (one pass per text and label). Texts are
synthetic, built to an exact token length. Results: JSON rows, a markdown table, a PNG plot.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_WORD_TEXT = (
    "the city team school season world state government music film war game year people company market "
    "player election court water energy health policy church river history league album county station "
    "research village family students series community report national support local president system "
    "program development business division members public project service career science art travel"
)
WORDS = _WORD_TEXT.split()


@dataclass
class GridOptions:
    labels: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128)
    lengths: Sequence[int] = (64, 256, 512)
    batch_sizes: Sequence[int] = (1, 32)
    texts: int = 16  # texts per point (at least one full batch for the large batch size)
    cross_encoder_pairs: int = 256  # text-label pairs per point for the cross-encoder (it is slow)
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def texts_of_length(tokenizer: Any, tokens: int, count: int, seed: int) -> list[str]:
    """`count` texts of exactly `tokens` tokens (without special tokens) for this tokenizer."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(tokens)]
        ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][:tokens]
        out.append(tokenizer.decode(ids))
    return out


def label_names(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < count:
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
        if name not in names:
            names.append(name)
    return names


def run_grid(
    systems: dict[str, Callable[[list[str], list[str], int], None]],
    tokenizer: Any,
    options: GridOptions,
    sync: Callable[[], None] = lambda: None,
    log: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Time every system at every grid point, in rotating order; ex/s per system and point.

    A system is `fn(texts, labels, batch_size)`; the "cross-encoder" system gets fewer texts
    (`cross_encoder_pairs` text-label pairs) since it makes one pass per pair.
    """
    rows = []
    turn = 0
    for batch_size in options.batch_sizes:
        for length in options.lengths:
            count = max(options.texts, batch_size)
            texts = texts_of_length(tokenizer, length, count, options.seed + length)
            for n_labels in options.labels:
                labels = label_names(n_labels, options.seed + n_labels)
                row: dict[str, Any] = {"batch_size": batch_size, "length": length, "labels": n_labels}
                names = list(systems)
                names = names[turn % len(names) :] + names[: turn % len(names)]
                turn += 1
                for name in names:
                    subset = texts
                    if name == "cross-encoder":
                        subset = texts[: max(1, min(count, options.cross_encoder_pairs // n_labels))]
                    systems[name](subset[:1], labels, batch_size)  # warm-up
                    sync()
                    start = time.perf_counter()
                    systems[name](subset, labels, batch_size)
                    sync()
                    row[name] = len(subset) / (time.perf_counter() - start)
                if "everylabel" in row:
                    for name in systems:
                        if name != "everylabel":
                            row[f"vs_{name}"] = row["everylabel"] / row[name]
                rows.append(row)
                if log is not None:
                    log(row)
    return rows


def markdown_table(rows: list[dict[str, Any]], systems: Sequence[str]) -> str:
    others = [s for s in systems if s != "everylabel"]
    header = ["batch", "tokens", "labels", *[f"{s} ex/s" for s in systems], *[f"x {s}" for s in others]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for row in rows:
        cells = [str(row["batch_size"]), str(row["length"]), str(row["labels"])]
        cells += [f"{row[s]:.1f}" for s in systems]
        cells += [f"{row[f'vs_{s}']:.2f}" for s in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], systems: Sequence[str], path: Path, title: str) -> None:
    """ex/s against the number of labels (log-log), one panel per text length and batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch_size"] for r in rows})
    lengths = sorted({r["length"] for r in rows})
    figure, axes = plt.subplots(len(batches), len(lengths), figsize=(4.2 * len(lengths), 3.4 * len(batches)),
                                squeeze=False)  # fmt: skip
    for i, batch in enumerate(batches):
        for j, length in enumerate(lengths):
            ax = axes[i][j]
            points = [r for r in rows if r["batch_size"] == batch and r["length"] == length]
            for system in systems:
                ax.plot([r["labels"] for r in points], [r[system] for r in points], marker="o", label=system)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{length} tokens, batch {batch}", fontsize=10)
            ax.set_xlabel("labels")
            ax.set_ylabel("examples / s")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    processor = platform.processor() or platform.machine()
    return f"CPU {processor}, {torch.get_num_threads()} threads"


def write_outputs(
    rows: list[dict[str, Any]], systems: Sequence[str], out: Path, meta: dict[str, Any]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = markdown_table(rows, systems)
    (out / "throughput.md").write_text(f"{meta['title']}\n\n{table}\n")
    try:
        plot(rows, systems, out / "throughput.png", meta["title"])
    except ImportError:
        print("matplotlib is not installed: no plot written")
