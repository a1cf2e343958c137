"""Recovery: the short training that wins back accuracy after pruning, shared by structured and weight pruning.

With a teacher (by default the unpruned model) it distils with bertlite's `DistillationTrainer` (soft logits, hard
labels and hidden states, layer to layer: pruning keeps the number of layers and the hidden width); without one it
fine-tunes on the labels with `transformers.Trainer`, which is also the retraining step of iterative magnitude
pruning and of the Lottery Ticket rounds. Weight pruning's masks live in forward pre-hooks and structured pruning's
gates in a callback, so neither trainer needs to know of them.
"""

from __future__ import annotations

import os
from typing import Callable

from torch import nn

from . import defaults

# What compression_config.json records of a recovery run.
RECORDED = ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "weight_decay", "seed",
            "train_sampling_strategy")
DISTILLATION_RECORDED = ("temperature", "logit_weight", "hard_label_weight", "embedding_weight", "hidden_weight",
                         "attention_weight", "layer_map", "layer_loss_reduction", "hidden_loss")


def training_arguments(output_dir: str, *, distill: bool, epochs: float = defaults.EPOCHS, max_steps: int = -1,
                       learning_rate: float = defaults.LEARNING_RATE, batch_size: int = defaults.BATCH_SIZE,
                       seed: int = defaults.SEED, warmup: float = defaults.WARMUP,
                       logging_steps: int = defaults.LOGGING_STEPS):
    """The recovery settings: a `DistillationConfig` when distilling from a teacher, `TrainingArguments` otherwise."""
    import torch
    from transformers import TrainingArguments

    from .. import DistillationConfig  # public names: they stay put while the distillation package moves
    from ..distillation.config import EARLIER_DEFAULT_LOSS
    from ..distillation.teacher import SAMPLING

    settings = dict(
        output_dir=output_dir, num_train_epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size, warmup_steps=warmup,
        weight_decay=defaults.WEIGHT_DECAY, seed=seed, logging_steps=logging_steps, report_to="none",
        # No checkpoints: they would hold weight pruning's masked parametrisation (weight_orig/weight_mask) or a
        # model in the middle of gradual pruning, and a recovery run is short enough to start again.
        save_strategy="no",
        # Batches of similar lengths: the same examples with about half the padded positions (as `bertlite distill`).
        train_sampling_strategy=SAMPLING,
        dataloader_pin_memory=torch.accelerator.is_available(),  # see DistillationConfig
    )
    if not distill:
        return TrainingArguments(**settings)
    # The attention-map loss stays off: a structurally pruned student has fewer heads than its teacher, so their
    # attention maps cannot be compared head by head. Interrupt checkpoints could not be resumed from (see above).
    # The loss is the one pruning's results were measured with, not today's task-distillation defaults: those were
    # chosen for shallower students learning from the teacher's layers (docs/results/peers.md), not for a pruned
    # model winning back what it lost.
    return DistillationConfig(**settings, **EARLIER_DEFAULT_LOSS, attention_weight=0.0, save_on_interrupt=False)


def train(model: nn.Module, args, train_dataset, tokenizer, *, teacher: nn.Module | None = None, callbacks=()):
    """Train `model` on a tokenized dataset (distilling from `teacher` when given). Returns the trainer."""
    from transformers import DataCollatorWithPadding, Trainer

    common = dict(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                  data_collator=DataCollatorWithPadding(tokenizer), callbacks=list(callbacks))
    if teacher is None:
        trainer = Trainer(**common)
    else:
        from .. import DistillationTrainer

        trainer = DistillationTrainer(teacher_model=teacher, **common)
    trainer.train()
    if os.path.isdir(args.output_dir) and not os.listdir(args.output_dir):
        os.rmdir(args.output_dir)  # no checkpoints are saved (save_strategy "no"): leave no empty folder behind
    return trainer


def trained_model(trainer) -> nn.Module:
    """The model `train` trained: a DistillationTrainer's student (its `trainer.model` holds the projections too)."""
    return getattr(trainer, "student", trainer.model)


def recorded(args) -> dict:
    """The settings of a recovery run that compression_config.json keeps."""
    keys = RECORDED + (DISTILLATION_RECORDED if hasattr(args, "temperature") else ())
    return {key: getattr(args, key) for key in keys}


def task_train_fn(tokenizer, train_dataset, output_dir: str, *, max_length: int = defaults.MAX_LENGTH,
                  teacher: nn.Module | None = None, **settings) -> Callable[[nn.Module], None]:
    """A `train_fn(model)` that trains a sequence classifier on `train_dataset` (columns text[, text_pair], label):
    fine-tuning, or distillation from `teacher` when one is given. `settings` are `training_arguments`'s. The data
    is tokenized once; every call starts a fresh optimizer and schedule, as retraining rounds do. The settings are
    in `train_fn.settings` (for compression_config.json)."""
    from datasets import DatasetDict

    from ..data import tokenize

    tokenized = tokenize(DatasetDict(train=train_dataset), tokenizer, max_length)["train"]
    args = training_arguments(os.path.join(output_dir, "recovery"), distill=teacher is not None, **settings)

    def train_fn(model: nn.Module) -> None:
        train(model, args, tokenized, tokenizer, teacher=teacher)

    train_fn.settings = recorded(args)
    return train_fn
