"""The measurements a model card reports, and where they come from.

Two sources, merged key by key (the second wins): the `metrics` dict of compression_config.json, then a
`metrics.json` file in the model folder. Both use the same schema (documented in docs/hub.md):

    {
      "teacher": {"accuracy": 0.912, "accuracy_std": 0.004, "parameters": 22713216, "size_mb": 90.9, "latency_ms": 41.3},
      "student": {"accuracy": 0.874, "accuracy_std": 0.006, "parameters": 11170560, "size_mb": 44.7, "latency_ms": 18.2},
      "speedup": 2.27,                  # optional: teacher latency / student latency, computed when absent
      "eval_split": "test",             # split the accuracy was measured on
      "eval_examples": 854,
      "seeds": [0, 1, 2],               # when accuracy is a mean over training seeds (then give accuracy_std)
      "latency": {"batch_size": 8, "seq_len": 128, "threads": 2, "device": "CPU model name",
                  "method": "bertlite.evaluation.compare_latency, interleaved, median of 5 rounds"},
      "command": "python scripts/bench_distill.py --task rotten_tomatoes --seeds 0 1 2"
    }

"compressed" is accepted as another name for "student". Any other numeric key under teacher/student (f1, matthews
correlation, pearson...) becomes a row of the card's table and an entry of the model-index. Nothing is invented: a
value that was not measured is shown as "not measured". Only the compressed model's parameter count and size, which
are facts of the uploaded files, are filled in from the folder when missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import BertliteError

METRICS_FILE = "metrics.json"
SIDES = ("teacher", "student")
# Keys with a fixed meaning; every other numeric key under a side is a task metric.
SHAPE_KEYS = ("parameters", "size_mb", "latency_ms")
RESERVED_SUFFIXES = ("_std",)
LABELS = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "matthews_correlation": "Matthews correlation",
    "pearson": "Pearson correlation",
    "spearmanr": "Spearman correlation",
}


@dataclass
class CardMetrics:
    teacher: dict = field(default_factory=dict)
    student: dict = field(default_factory=dict)
    speedup: float | None = None
    eval_split: str | None = None
    eval_examples: int | None = None
    seeds: list | None = None
    latency: dict = field(default_factory=dict)
    command: str | None = None
    sources: list[str] = field(default_factory=list)  # which files the numbers came from
    student_filled_from_files: list[str] = field(default_factory=list)  # keys taken from the folder, not measured

    @property
    def task_metrics(self) -> list[str]:
        """Quality metrics present on either side, accuracy first."""
        keys = []
        for side in (self.teacher, self.student):
            for k, v in side.items():
                if k in SHAPE_KEYS or k.endswith(RESERVED_SUFFIXES) or not _is_number(v) or k in keys:
                    continue
                keys.append(k)
        return sorted(keys, key=lambda k: (k != "accuracy", k))

    @property
    def measured_speedup(self) -> float | None:
        if self.speedup is not None:
            return self.speedup
        t, s = self.teacher.get("latency_ms"), self.student.get("latency_ms")
        if _is_number(t) and _is_number(s) and s > 0:
            return t / s
        return None

    @property
    def is_empty(self) -> bool:
        return not any(k not in self.student_filled_from_files for k in self.student) and not self.teacher


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


def _validate(raw: dict, where: str) -> dict:
    if not isinstance(raw, dict):
        raise BertliteError(f"The metrics in {where} must be a JSON object; see docs/hub.md for the expected keys.")
    raw = dict(raw)
    if "compressed" in raw and "student" not in raw:
        raw["student"] = raw.pop("compressed")
    for side in SIDES:
        values = raw.get(side, {})
        if not isinstance(values, dict):
            raise BertliteError(f"metrics[{side!r}] in {where} must be an object like {{\"accuracy\": 0.87}}.")
        for key in (*SHAPE_KEYS, "accuracy"):
            if key in values and values[key] is not None and not _is_number(values[key]):
                raise BertliteError(f"metrics[{side!r}][{key!r}] in {where} must be a number, got {values[key]!r}.")
    if raw.get("speedup") is not None and not _is_number(raw["speedup"]):
        raise BertliteError(f"metrics['speedup'] in {where} must be a number, got {raw['speedup']!r}.")
    return raw


def read_card_metrics(folder, compression=None) -> CardMetrics:
    """Merge compression_config.metrics and metrics.json of a ModelFolder, then fill the compressed model's
    parameter count and size from its files when they were not recorded."""
    merged: dict = {"teacher": {}, "student": {}}
    sources = []
    layers = []
    if compression is not None and compression.metrics:
        layers.append((compression.metrics, "compression_config.json"))
    path = os.path.join(folder.path, METRICS_FILE)
    if os.path.isfile(path):
        try:
            with open(path) as f:
                layers.append((json.load(f), METRICS_FILE))
        except json.JSONDecodeError as err:
            raise BertliteError(f"{path} is not valid JSON: {err}") from err
    for raw, where in layers:
        raw = _validate(raw, where)
        sources.append(where)
        for key, value in raw.items():
            if key in SIDES:
                merged[key].update({k: v for k, v in value.items() if v is not None})
            elif value is not None:
                merged[key] = value
    metrics = CardMetrics(
        teacher=merged["teacher"], student=merged["student"], speedup=merged.get("speedup"),
        eval_split=merged.get("eval_split"), eval_examples=merged.get("eval_examples"), seeds=merged.get("seeds"),
        latency=merged.get("latency") or {}, command=merged.get("command"), sources=sources,
    )
    if folder.safetensors_files:
        if "parameters" not in metrics.student:
            metrics.student["parameters"] = folder.num_parameters
            metrics.student_filled_from_files.append("parameters")
        if "size_mb" not in metrics.student:
            metrics.student["size_mb"] = round(folder.weights_size_mb, 2)
            metrics.student_filled_from_files.append("size_mb")
    return metrics
