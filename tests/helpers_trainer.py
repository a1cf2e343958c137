"""Shared pieces for trainer tests (also run as the per-process script of the two-process DDP test)."""

import torch

from bertlite.distillation.config import DistillationConfig
from bertlite.distillation.student import build_student
from bertlite.distillation.trainer import DistillationTrainer

from conftest import tiny_dataset, tiny_model


def pad_collate(features):
    length = max(len(f["input_ids"]) for f in features)
    batch = {
        "input_ids": torch.tensor([f["input_ids"] + [0] * (length - len(f["input_ids"])) for f in features]),
        "attention_mask": torch.tensor([f["attention_mask"] + [0] * (length - len(f["attention_mask"])) for f in features]),
    }
    if "labels" in features[0]:
        batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


def make_trainer(output_dir, student=None, teacher=None, dataset=None, **config):
    teacher = teacher if teacher is not None else tiny_model(seed=0)
    if student is None:
        student = build_student(teacher, num_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32, seed=1)
    values = dict(output_dir=str(output_dir), max_steps=6, per_device_train_batch_size=8, logging_steps=1,
                  learning_rate=1e-3, report_to="none", save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
                  embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0, save_on_interrupt=False)
    values.update(config)
    args = DistillationConfig(**values)
    return DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset or tiny_dataset(),
                               data_collator=pad_collate)
