"""Child process for the kill-and-resume test: trains with a pause per batch so it can be killed."""

from __future__ import annotations

import sys
import time

from transformers.utils import logging

from everylabel.training.config import load_config
from everylabel.training.trainer import Trainer


class SlowTrainer(Trainer):
    def training_batch(self, batch):  # the pause changes no result, it only widens the kill window
        time.sleep(float(sys.argv[2]))
        return super().training_batch(batch)


if __name__ == "__main__":
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    SlowTrainer(load_config(sys.argv[1])).train()
