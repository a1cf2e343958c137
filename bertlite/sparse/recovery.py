"""Recovery: fine-tuning a pruned model on the task with its masks attached (pruned weights stay zero).

The same training function serves as the retraining step of iterative magnitude pruning and of the Lottery Ticket
rounds. It is a plain `transformers.Trainer` run; masks live in forward pre-hooks of the modules, so Trainer needs
no knowledge of them.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from ..data import tokenize


def task_train_fn(tokenizer, train_dataset, output_dir: str, *, epochs: float = 1.0, max_steps: int = -1,
                  learning_rate: float = 3e-5, batch_size: int = 32, max_length: int = 128, seed: int = 0,
                  warmup: float = 0.1, logging_steps: int = 50) -> Callable[[nn.Module], None]:
    """A `train_fn(model)` that fine-tunes a sequence classifier on `train_dataset` (columns text[, text_pair],
    label). The data is tokenized once; every call starts a fresh optimizer and schedule, as retraining rounds do."""
    from datasets import DatasetDict
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    tokenized = tokenize(DatasetDict(train=train_dataset), tokenizer, max_length)["train"]
    collator = DataCollatorWithPadding(tokenizer)

    def train(model: nn.Module) -> None:
        args = TrainingArguments(
            output_dir=os.path.join(output_dir, "recovery"),
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            num_train_epochs=epochs,
            max_steps=max_steps,
            warmup_steps=warmup,
            weight_decay=0.01,
            save_strategy="no",  # checkpoints would hold the masked parametrisation (weight_orig/weight_mask)
            report_to="none",
            logging_steps=logging_steps,
            seed=seed,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        Trainer(model=model, args=args, train_dataset=tokenized, data_collator=collator).train()

    return train
