"""Recovery: training a pruned model on the task with its masks attached (pruned weights stay zero).

Plain fine-tuning on the labels (`transformers.Trainer`), or distillation from the dense teacher (bertlite's
`DistillationTrainer`: soft logits, hard labels and hidden states; the pruned model has the teacher's shape, so
layers map one to one). The fine-tuning function is also the retraining step of iterative magnitude pruning and of
the Lottery Ticket rounds. Masks live in forward pre-hooks of the modules, so neither trainer needs to know of them.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from ...data import tokenize
from ...distillation.teacher import SAMPLING

RECORDED = ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "seed",
            "train_sampling_strategy")
DISTILLATION_RECORDED = ("temperature", "logit_weight", "hard_label_weight", "hidden_weight", "attention_weight", "layer_map")


def task_train_fn(tokenizer, train_dataset, output_dir: str, *, epochs: float = 1.0, max_steps: int = -1,
                  learning_rate: float = 3e-5, batch_size: int = 32, max_length: int = 128, seed: int = 0,
                  warmup: float = 0.1, logging_steps: int = 50, teacher: nn.Module | None = None,
                  ) -> Callable[[nn.Module], None]:
    """A `train_fn(model)` that trains a sequence classifier on `train_dataset` (columns text[, text_pair], label):
    fine-tuning, or distillation from `teacher` when one is given. The data is tokenized once; every call starts a
    fresh optimizer and schedule, as retraining rounds do."""
    from datasets import DatasetDict
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    tokenized = tokenize(DatasetDict(train=train_dataset), tokenizer, max_length)["train"]
    collator = DataCollatorWithPadding(tokenizer)
    settings = dict(
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
        # Batches of similar lengths: the same examples with about half the padded positions (as the distill CLI).
        train_sampling_strategy=SAMPLING,
        dataloader_pin_memory=torch.cuda.is_available(),
    )

    if teacher is None:
        config = TrainingArguments(**settings)
    else:
        from ...distillation.config import DistillationConfig

        # Interrupt checkpoints would hold the masked parametrisation too, and could not be resumed from.
        config = DistillationConfig(**settings, save_on_interrupt=False)

    def train(model: nn.Module) -> None:
        if teacher is None:
            Trainer(model=model, args=config, train_dataset=tokenized, data_collator=collator).train()
            return
        from ...distillation.trainer import DistillationTrainer

        DistillationTrainer(model=model, teacher_model=teacher, args=config, train_dataset=tokenized,
                            data_collator=collator).train()

    recorded = RECORDED + (DISTILLATION_RECORDED if teacher is not None else ())
    train.settings = {key: getattr(config, key) for key in recorded}  # for compression_config.json
    return train
