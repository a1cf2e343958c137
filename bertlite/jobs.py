"""Trainer callbacks that any Trainer can use: graceful interruption."""

from __future__ import annotations

import signal
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
