"""The one job runner: what every training command does around its training.

- the output folder is checked before any work (`prepare_output_dir`);
- training resumes from the newest *complete* checkpoint, or starts over with `fresh` (`run_training`);
- Ctrl-C / SIGTERM finishes the step in flight, checkpoints and stops (`SaveOnInterruptCallback`);
- the result folder (safetensors weights, tokenizer, compression record, metrics) is written atomically
  (`save_model_folder`).
Task and general distillation and the teacher fine-tune run through it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading

from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)


class SaveOnInterruptCallback(TrainerCallback):
    """First Ctrl-C (or SIGTERM): finish the step in flight, save a checkpoint, stop training. Second Ctrl-C: stop at
    once. Re-running with `resume_from_checkpoint` then continues from exactly that step, so nothing is lost."""

    def __init__(self):
        self.interrupted = False
        self._previous = {}

    def _handler(self, signum, frame):
        if self.interrupted:  # second signal: the user really wants out now
            self._restore()
            raise KeyboardInterrupt
        self.interrupted = True
        logger.warning("Interrupt received: saving a checkpoint after this step, then stopping "
                       "(press Ctrl-C again to stop without saving).")

    def _restore(self):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.interrupted = False
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handler)

    def on_step_end(self, args, state, control, **kwargs):
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._restore()


CHECKPOINTS = "checkpoints"  # sub-folder of a command's output folder holding its Trainer checkpoints
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def prepare_output_dir(path: str, *, create: bool = True) -> str:
    """Check (and create) the output folder, or fail in one line before any work when it cannot be one: a file, a
    folder that cannot be written. `create=False` checks without creating it (commands that write only at the end)."""
    from .errors import BertliteError

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise BertliteError(f"The output folder must be a folder name, got {path!r}: pass --output_dir DIR.")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise BertliteError(f"--output_dir {path!r} is a file, not a folder: choose another --output_dir.")
    if not create:
        existing = os.path.abspath(path)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise BertliteError(f"Cannot make the output folder {path!r}: {existing!r} is a file. Choose another --output_dir.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise BertliteError(f"Cannot write to the output folder {path!r} (permission denied on {existing!r}): choose another --output_dir.")
        return path
    try:
        os.makedirs(path, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".bertlite-write-test-", delete=True)
        probe.close()
    except OSError as err:
        raise BertliteError(f"Cannot write to the output folder {path!r} ({err.strerror or err}): choose another --output_dir.") from err
    return path


# ----- re-run rules -----------------------------------------------------------------------------------------------
# A training job records, when it starts, the settings that decide its result in JOB_FILE. A re-run in the same
# folder compares them: the same settings resume (or reuse a finished result); other settings stop with one line,
# unless --fresh. A folder holding a model that no bertlite job wrote there is never overwritten without --fresh.
JOB_FILE = "bertlite_job.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
                "tf_model.h5", "flax_model.msgpack", "model.onnx")
# TrainingArguments fields that change what training produces; the others (logging, evaluation, saving, output and
# Hub options, dataloader workers...) may differ between a run and its re-run.
TRAINING_RESULT_KEYS = ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size",
                        "gradient_accumulation_steps", "warmup_steps", "warmup_ratio", "weight_decay", "lr_scheduler_type",
                        "lr_scheduler_kwargs", "optim", "optim_args", "adam_beta1", "adam_beta2", "adam_epsilon",
                        "max_grad_norm", "label_smoothing_factor", "seed", "data_seed", "fp16", "bf16",
                        "train_sampling_strategy", "group_by_length", "full_determinism")
# Fields of bertlite's own argument dataclasses that do not change the result.
NOT_RESULT_KEYS = {"output_dir", "fresh", "measure_latency", "overwrite_output_dir", "save_on_interrupt", "trust_remote_code",
                   "max_eval_examples"}


def result_settings(*arguments) -> dict:
    """The result-relevant settings of a command's argument dataclasses, as plain JSON values."""
    import dataclasses

    from transformers import TrainingArguments

    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    settings = {}
    for obj in arguments:
        if obj is None:
            continue
        for f in dataclasses.fields(obj):
            training_field = isinstance(obj, TrainingArguments) and f.name in base
            if f.name in NOT_RESULT_KEYS or (training_field and f.name not in TRAINING_RESULT_KEYS):
                continue
            settings[f.name] = getattr(obj, f.name)
    from .record import redact_secrets

    return redact_secrets(json.loads(json.dumps(settings, default=str, sort_keys=True)))  # compared as stored


def read_job(output_dir: str) -> dict | None:
    """The job record of a folder (None when there is none or it cannot be read)."""
    try:
        with open(os.path.join(output_dir, JOB_FILE)) as f:
            job = json.load(f)
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) else None


def holds_model(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "config.json")) and any(
        os.path.exists(os.path.join(folder, name)) for name in WEIGHT_FILES)


def check_job(output_dir: str, settings: dict, *, fresh: bool = False) -> bool:
    """Check the output folder before any work, writing nothing. Returns whether earlier work in the folder may be
    resumed or reused (same settings, or none recorded); False when `fresh` overrides a conflict, so that the caller
    starts over. Raises one line otherwise. `record_job` then records the settings, just before training."""
    from .errors import BertliteError

    prepare_output_dir(output_dir, create=False)
    previous = read_job(output_dir)
    resumable = True
    if previous is not None and previous.get("settings") != settings:
        old = previous.get("settings") or {}
        # Values that differ first: a setting only one side knows (another bertlite version) matters less.
        changed = (sorted(k for k in set(old) & set(settings) if old[k] != settings[k])
                   or sorted(k for k in set(old) ^ set(settings)))
        if not fresh:
            shown = ", ".join(f"{k} {old.get(k, '(unset)')!r} -> {settings.get(k, '(unset)')!r}" for k in changed[:6])
            more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
            raise BertliteError(f"{output_dir!r} holds {previous.get('job', 'a job')} run with other settings ({shown}{more}): "
                                "pass --fresh to start over there, or choose another --output_dir.")
        resumable = False
    elif previous is None and holds_model(output_dir):
        if not fresh:
            raise BertliteError(f"{output_dir!r} already holds a model (config.json and weights) that no bertlite job wrote "
                                "there: pass --fresh to replace it, or choose another --output_dir.")
        resumable = False
    return resumable


def record_job(output_dir: str, what: str, settings: dict) -> None:
    """Record the settings a job trains with (checked by `check_job` on re-runs), before its first checkpoint."""
    from .record import write_json

    prepare_output_dir(output_dir)
    write_json(os.path.join(output_dir, JOB_FILE), {"job": what, "settings": settings, "finished": False})


def finish_job(output_dir: str, **details) -> None:
    """Mark the folder's job finished (a re-run with the same settings may reuse its result)."""
    from .record import write_json

    job = read_job(output_dir) or {}
    write_json(os.path.join(output_dir, JOB_FILE), {**job, "finished": True, **details})


def _is_complete(checkpoint: str) -> bool:
    """Trainer writes trainer_state.json after the weights, optimizer and scheduler: with it readable and the weights
    present, the checkpoint was finished."""
    try:
        with open(os.path.join(checkpoint, "trainer_state.json")) as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return any(name.endswith(".safetensors") for name in os.listdir(checkpoint))


def last_complete_checkpoint(folder: str, log=print) -> str | None:
    """The newest complete `checkpoint-N` in `folder`. Newer, half-written ones (a crash while saving) are set aside
    as `incomplete-checkpoint-N`, never deleted, so that resuming uses the last good one."""
    if not os.path.isdir(folder):
        return None
    steps = sorted((int(m.group(1)), name) for name in os.listdir(folder) if (m := _CHECKPOINT.match(name)))
    for _, name in reversed(steps):
        path = os.path.join(folder, name)
        if _is_complete(path):
            return path
        aside = os.path.join(folder, f"incomplete-{name}")
        shutil.rmtree(aside, ignore_errors=True)  # an older set-aside copy of the same step
        os.replace(path, aside)
        log(f"Warning: {path} was not completely written (interrupted while saving?); set aside as {aside}.")
    return None


def run_training(trainer, *, fresh: bool = False, what: str = "the training", log=print):
    """`trainer.train()`, resuming from the newest complete checkpoint in `trainer.args.output_dir` (removed first with
    `fresh`). Raises KeyboardInterrupt after an interrupt was caught and checkpointed, so the command stops there."""
    folder = trainer.args.output_dir
    if fresh and os.path.isdir(folder):
        shutil.rmtree(folder)
    last = last_complete_checkpoint(folder, log)
    if last:
        log(f"Resuming {what} from {last} (pass --fresh to start over).")
    interrupt = next((c for c in trainer.callback_handler.callbacks if isinstance(c, SaveOnInterruptCallback)), None)
    if interrupt is None and getattr(trainer.args, "save_on_interrupt", True):  # DistillationConfig can turn it off
        interrupt = SaveOnInterruptCallback()
        trainer.add_callback(interrupt)
    result = trainer.train(resume_from_checkpoint=last)
    if interrupt is not None and interrupt.interrupted:
        raise KeyboardInterrupt
    return result


# Weights as Transformers and bertlite name them: model.safetensors, model-00001-of-00002.safetensors, their index,
# pytorch_model.bin, int8_model.safetensors, model_int8.onnx...
_MODEL_FILE = re.compile(r"^(pytorch_|tf_|flax_|int8_)?model(_int8)?(-\d+-of-\d+)?\.(safetensors|bin|h5|msgpack|onnx)(\.index\.json)?$")


def _is_model_file(name: str) -> bool:
    """Files of a saved model (weights in any format, their index, the int8 marker, the fp32 copy of an int8
    folder): replaced as a whole when another model is written. Anything else in the folder is left alone."""
    from .loading import QUANTIZATION_CONFIG_FILE

    return name in WEIGHT_FILES or name in (QUANTIZATION_CONFIG_FILE, "fp32") or bool(_MODEL_FILE.match(name))


def save_model_folder(output_dir: str, model=None, tokenizer=None, record=None, metrics=None, write=None,
                      state_dict=None) -> str:
    """Write a command's result into `output_dir` atomically: everything is written into a temporary folder beside
    it, then moved into place under an "incomplete" marker that every loader refuses, removed last. A crash while
    writing leaves the old folder unchanged; a crash while moving leaves a folder every loader refuses with a clear
    message; never a record describing weights that are not there. Model files of an earlier result that the new one
    does not have (another weights format, an int8 marker) are removed; checkpoints and other files stay.
    `write(staged)` writes further files (an int8 model, a report); `metrics` may be a function of the staged
    folder, to measure what is written (its size on disk). `state_dict`: the model's full weights where the model
    holds only a shard of them (FSDP, ZeRO-3)."""
    from .record import CONFIG_NAME, save_metrics

    os.makedirs(output_dir, exist_ok=True)
    for name in os.listdir(output_dir):  # left by a save that was killed before it could clean up
        if name.startswith(".saving-"):
            shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)
    staging = tempfile.mkdtemp(dir=output_dir, prefix=".saving-")
    from .loading import INCOMPLETE_FILE

    marker = os.path.join(output_dir, INCOMPLETE_FILE)
    try:
        if model is not None:
            model.save_pretrained(staging, **({} if state_dict is None else {"state_dict": state_dict}))  # safetensors
        if write is not None:
            write(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if callable(metrics):
            metrics = metrics(staging)
        if metrics is not None:
            save_metrics(staging, metrics)
            if record is not None:
                record.metrics = metrics
        if record is not None:
            record.save_pretrained(staging)
        names = sorted(os.listdir(staging), key=lambda name: name == CONFIG_NAME)
        with open(marker, "w") as f:
            f.write("bertlite is writing this folder; it is incomplete until this file is gone.\n")
        if "config.json" in names:  # a new model: no weights of the old one may stay beside it
            for stale in os.listdir(output_dir):
                path = os.path.join(output_dir, stale)
                if stale not in names and _is_model_file(stale):
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        for name in names:
            target = os.path.join(output_dir, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)  # os.replace cannot replace a non-empty folder
            os.replace(os.path.join(staging, name), target)
        os.remove(marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
