"""Getting a teacher that is trained on the task: use it as is when it already has a head for the task,
otherwise fine-tune it first and keep the result (re-runs reuse it)."""

from __future__ import annotations

import math
import os

import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
from transformers.utils import logging

from ..jobs import CHECKPOINTS, check_job, finish_job, read_job, record_job, run_training, save_model_folder
from ..data import load_task, tokenize
from ..errors import BertliteError
from ..metrics import metric_spec, trainer_compute_metrics
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
# The teacher fine-tune's default schedule. scripts/bench_teacher.py's grid ranks 3 epochs first on the teacher's
# validation score, but its test score is level and the student distilled from it was worse in the main job
# (docs/results/teacher.md), so the default stays at 2 epochs until a student-level comparison says otherwise.
TEACHER_EPOCHS, TEACHER_LEARNING_RATE = 2.0, 1e-4


def finetuned_teacher(teacher: str, task: str, output_dir: str, *, epochs: float = TEACHER_EPOCHS,
                      learning_rate: float = TEACHER_LEARNING_RATE,
                      batch_size: int = 32, max_length: int = 128, seed: int = 42, max_train_examples: int | None = None,
                      trust_remote_code: bool = False, name: str | None = None, fresh: bool = False,
                      holdout_examples: int | None = None, log=print) -> str:
    """Path of a teacher trained on `task`. A teacher that already has a head for the task is returned unchanged;
    otherwise it is fine-tuned into `output_dir` (resuming an interrupted fine-tune, reusing a finished one whose
    recorded settings match; other settings are an error unless `fresh`). `name`: how logs and records call the
    teacher (default: its display name); `holdout_examples`: training examples it never sees (see `load_task`)."""
    _, info = load_task(task, max_train_examples=1, max_eval_examples=1)
    source = resolve_model_name(teacher)
    if has_task_head(source, info.num_labels):
        log(f"Teacher {name or display_name(teacher)} already has a {info.num_labels}-label classification head: used as is.")
        return source
    return fine_tune(teacher, task, output_dir, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                     max_length=max_length, seed=seed, max_train_examples=max_train_examples,
                     trust_remote_code=trust_remote_code, name=name, fresh=fresh, holdout_examples=holdout_examples, log=log)


def fine_tune(model_name: str, task: str, output_dir: str, *, epochs: float = 2.0, learning_rate: float = 1e-4,
              batch_size: int = 32, max_length: int = 128, seed: int = 42, max_train_examples: int | None = None,
              trust_remote_code: bool = False, name: str | None = None, fresh: bool = False, what: str = "teacher",
              holdout_examples: int | None = None, log=print) -> str:
    """Fine-tune `model_name` on `task`'s labels into `output_dir`, keeping the epoch with the best validation score,
    whether or not it already has a head (the teacher fine-tune, and compress's shrink-and-fine-tune baseline:
    `what` names it in logs and the job record)."""
    dsd, info = load_task(task, max_train_examples=max_train_examples, holdout_examples=holdout_examples)
    source = resolve_model_name(model_name)
    name = name or display_name(model_name)
    spec = metric_spec(info)
    settings = {what: name, "task": task, "epochs": epochs, "learning_rate": learning_rate,
                "batch_size": batch_size, "max_length": max_length, "seed": seed, "max_train_examples": max_train_examples,
                "sampling": SAMPLING, "selection": f"best validation {spec.main} of the epochs"}
    if holdout_examples:  # only when set, so that the records of earlier fine-tunes still match
        settings["holdout_examples"] = holdout_examples
    # The same re-run rules as every job (bertlite.jobs): a finished fine-tune with these settings is reused, an
    # interrupted one resumed, one with other settings is an error unless `fresh`.
    previous = read_job(output_dir) if os.path.isdir(output_dir) else None
    if (previous and previous.get("finished") and previous.get("settings") == settings
            and os.path.isfile(os.path.join(output_dir, "model.safetensors"))):
        log(f"Reusing the fine-tuned {what} in {output_dir} ({_describe(previous)}).")
        return output_dir
    resumable = check_job(output_dir, settings, fresh=fresh)

    intro = f"Teacher {name} has no trained head for {task}: fine-tuning it first" if what == "teacher" else \
        f"Fine-tuning the {what} {name} on {task}"
    log(f"{intro} ({epochs:g} epochs, lr {learning_rate:g}, {len(dsd['train'])} examples, the epoch with the best validation "
        f"{spec.main} kept) into {output_dir}.")
    tokenizer = load_tokenizer(source, trust_remote_code=trust_remote_code)
    torch.manual_seed(seed)
    model = load_model(source, head="classifier", num_labels=info.num_labels, trust_remote_code=trust_remote_code)
    if info.label_names:
        model.config.id2label = dict(enumerate(info.label_names))
        model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    encoded = tokenize(dsd, tokenizer, max_length)
    record_job(output_dir, f"a {what} fine-tune", settings)
    checkpoints = os.path.join(output_dir, CHECKPOINTS)
    # Scored on validation after every epoch; the best epoch by the task's main metric is loaded at the end.
    # save_total_limit=1 still keeps the best checkpoint (Trainer protects it, and the newest one for resuming).
    args = TrainingArguments(
        output_dir=checkpoints, num_train_epochs=epochs, learning_rate=learning_rate, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64, warmup_steps=0.1, weight_decay=0.01, eval_strategy="epoch", save_strategy="epoch",
        save_total_limit=1, load_best_model_at_end=True, metric_for_best_model=spec.main,
        greater_is_better=spec.greater_is_better, logging_steps=50, seed=seed, report_to="none", disable_tqdm=False,
        train_sampling_strategy=SAMPLING, dataloader_pin_memory=torch.accelerator.is_available(),  # see DistillationConfig
    )
    trainer = Trainer(model=model, args=args, train_dataset=encoded["train"], eval_dataset=encoded["validation"],
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                      compute_metrics=trainer_compute_metrics(spec))
    run_training(trainer, fresh=not resumable, what=f"the {what} fine-tune", log=log)
    selection = chosen_epoch(trainer.state, spec, what)
    # safetensors only (Trainer.save_model adds a pickled training_args.bin); "finished" last.
    save_model_folder(output_dir, trainer.model, tokenizer)
    finish_job(output_dir, **selection)
    log(f"Fine-tuned {what}: {_describe(selection)}.")
    return output_dir


def chosen_epoch(state, spec, what: str = "teacher") -> dict:
    """What the fine-tune kept, from Trainer's state: the selection metric, the chosen epoch and step, its
    validation scores, and every epoch's validation scores (`validation_history`)."""
    key = f"eval_{spec.main}"
    history = [{"epoch": round(e["epoch"], 4), "step": e["step"],
                **{m: _finite(e[f"eval_{m}"]) for m in spec.metrics if f"eval_{m}" in e}}
               for e in state.log_history if key in e]
    if not history:
        raise BertliteError(f"The {what} fine-tune was never evaluated on validation: no epoch finished. "
                            f"Train for at least one epoch ({'--teacher_epochs' if what == 'teacher' else 'epochs'}).")
    best_step = _checkpoint_step(state.best_model_checkpoint)
    chosen = next((h for h in history if h["step"] == best_step), None)
    if chosen is None:  # no checkpoint recorded (e.g. every score NaN): Trainer kept the last weights
        chosen = history[-1]
    return {"selection_metric": spec.main, "chosen_epoch": chosen["epoch"], "chosen_step": chosen["step"],
            "validation": {m: v for m, v in chosen.items() if m not in ("epoch", "step")},
            "validation_history": history}


def _finite(value):
    """None for an undefined score (trainer_compute_metrics ranks it last as -inf), so the marker is plain JSON."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _checkpoint_step(path) -> int | None:
    if not path:
        return None
    tail = os.path.basename(os.path.normpath(path))
    return int(tail.rsplit("-", 1)[1]) if tail.rsplit("-", 1)[-1].isdigit() else None


def read_marker(folder: str) -> dict:
    """The record of a teacher fine-tuned by bertlite in `folder` ({} when it was not): settings, chosen epoch and
    validation scores (see `chosen_epoch`), kept in the folder's job record (bertlite.jobs)."""
    job = read_job(folder) or {}
    return job if job.get("finished") else {}


def _describe(recorded: dict) -> str:
    metric = recorded.get("selection_metric")
    value = (recorded.get("validation") or {}).get(metric)
    if value is None:
        return "no validation score recorded"
    return f"epoch {recorded.get('chosen_epoch'):g} kept, validation {metric} {value:.4f}"
