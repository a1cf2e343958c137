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


def prepare_output_dir(path: str) -> str:
    """Create the output folder, or fail in one line before any work when it cannot be one."""
    from .errors import BertliteError

    if not path or not str(path).strip():
        raise BertliteError("The output folder name is empty: pass --output_dir DIR.")
    path = str(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise BertliteError(f"--output_dir {path!r} is a file, not a folder: choose another --output_dir.")
    try:
        os.makedirs(path, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".bertlite-write-test-", delete=True)
        probe.close()
    except OSError as err:
        raise BertliteError(f"Cannot write to the output folder {path!r} ({err.strerror or err}): choose another --output_dir.") from err
    return path


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


def save_model_folder(output_dir: str, model=None, tokenizer=None, record=None, metrics=None, state_dict=None) -> str:
    """Write a command's result into `output_dir` atomically: every file is written into a temporary folder beside it
    and renamed into place, the compression record last, so a crash leaves the old files or the new ones and
    never a record describing weights that are not there. Checkpoints and other files in the folder stay.
    `metrics` may be a function of the staged folder, to measure what is written (its size on disk). `state_dict`:
    the model's full weights where the model holds only a shard of them (FSDP, ZeRO-3)."""
    from .record import CONFIG_NAME, save_metrics

    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(dir=output_dir, prefix=".saving-")
    try:
        if model is not None:
            model.save_pretrained(staging, **({} if state_dict is None else {"state_dict": state_dict}))  # safetensors
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
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
