"""The `bertlite compress` runner: a list of stages, each writing its own folder, skipped when already done.

Each stage writes `DIR/stages/NN-key/` and then, last, `DIR/stages/NN-key/bertlite_stage.json` (the marker): the
stage's settings and a digest of the marker of the stage before it. A stage whose marker matches what it would
record now is skipped; any other stage runs, and because its marker changes, so does the digest every later stage
records, so they all run again. A stage interrupted half-way has no marker: its folder is kept, so a training
stage resumes from its newest checkpoint (bertlite.jobs.run_training); a stage whose recorded settings differ
starts from an empty folder (its checkpoints belong to other settings).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from ..benchmark import FINAL_DIR, STAGES_DIR  # noqa: F401  (the run folder's layout, defined once)
from ..benchmark import STAGE_MARKER as MARKER
from ..benchmark import read_stage_marker as read_marker
from ..errors import BertliteError
from ..record import VERSION, write_json


@dataclass
class Stage:
    """One step of the pipeline.

    key: short name, also the folder name (`03-distillation`); title: what the progress line says; label: the name of
    its model in the run's report (default: the title), recorded in the marker for `bertlite benchmark --from DIR`.
    settings: everything that decides the stage's result (JSON-able); a change re-runs it and every later stage.
    run: `run(folder, inputs)` writes the stage's result into `folder`; `inputs` maps the keys of earlier stages to
    their folders. makes_model: the folder holds a model (the last such folder becomes DIR/final).
    """

    key: str
    title: str
    settings: dict
    run: Callable[[str, dict], None]
    makes_model: bool = True
    label: str = ""
    folder: str = field(default="", init=False)


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_folder(output_dir: str, index: int, key: str) -> str:
    return os.path.join(output_dir, STAGES_DIR, f"{index + 1:02d}-{key}")


def run_stages(stages: list[Stage], output_dir: str, *, log=print) -> dict[str, str]:
    """Run the stages in order, skipping those already done with the same settings. Returns key -> folder.

    KeyboardInterrupt and errors propagate: every stage finished before keeps its folder and marker."""
    inputs: dict[str, str] = {}
    previous = None  # the marker of the stage before: its digest chains every stage to all the earlier ones
    total = len(stages)
    for index, stage in enumerate(stages):
        stage.folder = folder = stage_folder(output_dir, index, stage.key)
        marker = {"stage": stage.key, "settings": stage.settings, "input": _digest(previous) if previous else None}
        found = read_marker(folder)
        if found is not None and {k: found.get(k) for k in marker} == marker:
            log(f"[{index + 1}/{total}] {stage.title}: unchanged, kept {folder}")
        else:
            if found is not None:  # done before with other settings: its files and checkpoints are not this run's
                log(f"[{index + 1}/{total}] {stage.title}: settings changed, running it again")
                shutil.rmtree(folder)
            else:
                log(f"[{index + 1}/{total}] {stage.title}")
            os.makedirs(folder, exist_ok=True)
            started = time.perf_counter()
            stage.run(folder, dict(inputs))
            seconds = round(time.perf_counter() - started, 1)
            # Written last: the stage is done.
            write_json(os.path.join(folder, MARKER), {**marker, "label": stage.label or stage.title, "seconds": seconds,
                                                      "bertlite_version": VERSION})
            log(f"[{index + 1}/{total}] {stage.title}: done in {seconds:g} s")
        inputs[stage.key] = folder
        previous = marker
    return inputs


def last_model_stage(stages: list[Stage]) -> Stage:
    for stage in reversed(stages):
        if stage.makes_model:
            return stage
    raise BertliteError("The recipe has no stage that makes a model: add distillation, pruning or quantization.")


def write_final(source: str, final_dir: str, extra_files=()) -> str:
    """Copy the model files of `source` (not its checkpoints or other sub-folders) and `extra_files` into
    `final_dir`, replacing it whole: one folder that holds exactly the final model, ready to push."""
    parent = os.path.dirname(os.path.abspath(final_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(final_dir)}.tmp-")
    try:
        for name in sorted(os.listdir(source)):
            path = os.path.join(source, name)
            if os.path.isfile(path) and name != MARKER and not name.startswith(".") and name != "training_args.bin":
                shutil.copy2(path, os.path.join(staging, name))
        for path in extra_files:
            shutil.copy2(path, os.path.join(staging, os.path.basename(path)))
        if os.path.isdir(final_dir):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(final_dir)}.old-")
            os.replace(final_dir, os.path.join(old, "previous"))
            os.replace(staging, final_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final_dir
