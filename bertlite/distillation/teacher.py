"""Getting a teacher that is trained on the task: use it as is when it already has a head for the task,
otherwise fine-tune it first and keep the result (re-runs reuse it)."""

from __future__ import annotations

import os

import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
from transformers.utils import logging

from ..jobs import CHECKPOINTS, check_job, finish_job, read_job, record_job, run_training, save_model_folder
from ..data import load_task, tokenize
from ..errors import BertliteError
from ..loading import display_name, is_classifier, load_config, load_model, load_tokenizer, resolve_model_name

logger = logging.get_logger("bertlite")


def teacher_dir(output_dir: str, member: int = 0) -> str:
    """Where a command fine-tunes its teacher (ensemble members: teacher-2, teacher-3, ...), reused on re-runs."""
    return os.path.join(output_dir, "teacher" if member == 0 else f"teacher-{member + 1}")


def has_task_head(name_or_path: str, num_labels: int) -> bool:
    """A teacher counts as fine-tuned when it was saved as a sequence classifier with the task's label count.
    A sequence classifier with another label count is a BertliteError: fine-tuning it would fail inside
    from_pretrained on the head's size (e.g. a 2-label teacher and a file of float scores, a regression task)."""
    config = load_config(name_or_path)
    if not is_classifier(config):
        return False
    if config.num_labels != num_labels:
        task = "scores (a regression task: its labels are non-integer numbers)" if num_labels == 1 else f"{num_labels} labels"
        raise BertliteError(f"The teacher {display_name(name_or_path)} is fine-tuned for {config.num_labels} labels, but the task has "
                            f"{task}. Use a teacher fine-tuned on this task, or a pre-trained one without a task head.")
    return True


# Batches of similar lengths pad far less than random ones (rotten_tomatoes: about half the tokens), so the
# fine-tune takes about half the time at the same accuracy.
SAMPLING = "group_by_length"


def finetuned_teacher(teacher: str, task: str, output_dir: str, *, epochs: float = 2.0, learning_rate: float = 1e-4,
                      batch_size: int = 32, max_length: int = 128, seed: int = 42, max_train_examples: int | None = None,
                      trust_remote_code: bool = False, name: str | None = None, fresh: bool = False,
                      log=print) -> str:
    """Path of a teacher trained on `task`. A teacher that already has a head for the task is returned unchanged;
    otherwise it is fine-tuned into `output_dir` (resuming an interrupted fine-tune, reusing a finished one whose
    recorded settings match; other settings are an error unless `fresh`). `name`: how logs and records call the
    teacher (default: its display name)."""
    dsd, info = load_task(task, max_train_examples=max_train_examples)
    source = resolve_model_name(teacher)
    name = name or display_name(teacher)
    if has_task_head(source, info.num_labels):
        log(f"Teacher {name} already has a {info.num_labels}-label classification head: used as is.")
        return source

    settings = {"teacher": name, "task": task, "epochs": epochs, "learning_rate": learning_rate,
                "batch_size": batch_size, "max_length": max_length, "seed": seed, "max_train_examples": max_train_examples,
                "sampling": SAMPLING}
    # The same re-run rules as every job (bertlite.jobs): a finished fine-tune with these settings is reused, an
    # interrupted one resumed, one with other settings is an error unless `fresh`.
    previous = read_job(output_dir) if os.path.isdir(output_dir) else None
    if (previous and previous.get("finished") and previous.get("settings") == settings
            and os.path.isfile(os.path.join(output_dir, "model.safetensors"))):
        log(f"Reusing the fine-tuned teacher in {output_dir} (validation accuracy {previous.get('validation_accuracy') or float('nan'):.4f}).")
        return output_dir
    resumable = check_job(output_dir, settings, fresh=fresh)

    log(f"Teacher {name} has no trained head for {task}: fine-tuning it first "
        f"({epochs:g} epochs, lr {learning_rate:g}, {len(dsd['train'])} examples) into {output_dir}.")
    tokenizer = load_tokenizer(source, trust_remote_code=trust_remote_code)
    torch.manual_seed(seed)
    model = load_model(source, head="classifier", num_labels=info.num_labels, trust_remote_code=trust_remote_code)
    if info.label_names:
        model.config.id2label = dict(enumerate(info.label_names))
        model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    encoded = tokenize(dsd, tokenizer, max_length)
    record_job(output_dir, "a teacher fine-tune", settings)
    checkpoints = os.path.join(output_dir, CHECKPOINTS)
    args = TrainingArguments(
        output_dir=checkpoints, num_train_epochs=epochs, learning_rate=learning_rate, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64, warmup_steps=0.1, weight_decay=0.01, eval_strategy="epoch", save_strategy="epoch",
        save_total_limit=1, logging_steps=50, seed=seed, report_to="none", disable_tqdm=False,
        train_sampling_strategy=SAMPLING,
    )
    trainer = Trainer(model=model, args=args, train_dataset=encoded["train"], eval_dataset=encoded["validation"],
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                      compute_metrics=accuracy_metric)
    run_training(trainer, fresh=not resumable, what="the teacher fine-tune", log=log)
    metrics = trainer.evaluate()
    # safetensors only (Trainer.save_model adds a pickled training_args.bin); "finished" last.
    save_model_folder(output_dir, trainer.model, tokenizer)
    finish_job(output_dir, validation_accuracy=metrics.get("eval_accuracy"))
    log(f"Fine-tuned teacher: validation accuracy {metrics.get('eval_accuracy', float('nan')):.4f}.")
    return output_dir


def accuracy_metric(eval_prediction) -> dict:
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    if logits.shape[-1] == 1:
        import numpy as np

        return {"pearson": float(np.corrcoef(logits[:, 0], labels)[0, 1])}
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}
