"""Recovering accuracy after structured pruning by distilling from the unpruned model (bertlite's DistillationTrainer)."""

from __future__ import annotations

import torch

from ...errors import BertliteError


def distillation_classes():
    """(DistillationConfig, DistillationTrainer), or a clear error where this installation lacks them."""
    try:
        from ...distillation.config import DistillationConfig
        from ...distillation.trainer import DistillationTrainer
    except ImportError as err:
        raise BertliteError("Recovery by distillation needs bertlite's DistillationTrainer (bertlite.distillation.trainer), which this "
                            "installation lacks. Prune without --recover, or update bertlite.") from err
    return DistillationConfig, DistillationTrainer


def recovery_config(output_dir: str, *, epochs: float, learning_rate: float, batch_size: int, seed: int, **overrides):
    """Distillation settings for recovery. The attention-map loss is off: a pruned student has fewer heads than its
    teacher, so their attention maps cannot be compared head by head. Hidden states keep their width, so the
    layer-to-layer hidden-state loss (with the logit loss) stays on."""
    DistillationConfig, _ = distillation_classes()
    values = dict(output_dir=output_dir, num_train_epochs=epochs, learning_rate=learning_rate,
                  per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size, seed=seed,
                  attention_weight=0.0, eval_strategy="epoch", save_strategy="no", logging_steps=50, report_to=[],
                  warmup_steps=0.1,  # a float below 1 is a share of the steps in transformers v5
                  dataloader_pin_memory=torch.cuda.is_available())
    values.update(overrides)
    return DistillationConfig(**values)


def distill(student, teacher, tokenizer, tokenized, config, callbacks=()):
    """Train `student` toward `teacher` on tokenized train/validation splits. Returns the trainer (after training)."""
    from transformers import DataCollatorWithPadding

    from ...distillation.teacher import accuracy_metric

    _, DistillationTrainer = distillation_classes()
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config, train_dataset=tokenized["train"],
                                  eval_dataset=tokenized["validation"], processing_class=tokenizer,
                                  data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy_metric,
                                  callbacks=list(callbacks))
    trainer.train()
    return trainer
