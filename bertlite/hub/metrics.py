"""The measurements a model card reports, and where they come from.

Two sources, merged key by key (the second wins): the `metrics` dict of compression_config.json, then a
`metrics.json` file in the model folder. The schema (documented in docs/hub.md):

    {
      "teacher": {"test_accuracy": 0.912, "parameters": 22713216, "size_mb": 90.9, "latency_ms_b8": 41.3},
      "student": {"test_accuracy": 0.874, "test_accuracy_std": 0.006, "parameters": 11170560, "size_mb": 44.7,
                  "latency_ms_b8": 18.2, "speedup_b8": 2.27, "layers": 3, "hidden_size": 384},
      "eval_examples": {"test": 854},   # optional, per split
      "seeds": [0, 1, 2],               # when quality metrics are means over training seeds (then give *_std)
      "latency_setup": {"seq_len": 128, "threads": 2, "device": "...", "measured_by": "..."},
      "command": "bertlite distill --task rotten_tomatoes ..."
    }

Per model ("teacher", "student"; "compressed" is accepted for "student"):
- quality: `<split>_<metric>` (test_accuracy, validation_f1, ...) or a bare known metric (accuracy, f1, ...) measured on
  the top-level `eval_split`; `<key>_std` is its spread over `seeds`.
- `parameters`, `size_mb`; `latency_ms_b<N>` (batch N) or `latency_ms` (batch `latency_setup.batch_size`);
  `speedup_b<N>` / `speedup` (computed from the two latencies when absent).
- shape: `layers`, `hidden_size`, `intermediate_size`, `attention_heads`.
Other keys are ignored. Nothing is invented: what was not measured shows as "not measured". Only facts of the
uploaded files (the compressed model's parameter count, size and shape) are filled in from the folder.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from ..errors import BertliteError
from ..metrics import DISPLAY_NAMES

from ..record import METRICS_FILE, redact_secrets, write_json
SIDES = ("teacher", "student")
SPLITS = ("test", "test_mismatched", "validation", "eval", "train")  # display order (mnli: test_mismatched)
# Metric names are the Hub's model-index types, as bertlite.metrics names them; older files' names are translated.
QUALITY_METRICS = ("accuracy", "f1", "precision", "recall", "matthews_correlation", "pearsonr", "spearmanr",
                   "exact_match", "mse", "mae")
ALIASES = {"pearson": "pearsonr", "spearman": "spearmanr", "mcc": "matthews_correlation"}
SHAPE_FIELDS = ("layers", "hidden_size", "intermediate_size", "attention_heads")
LABELS = {**DISPLAY_NAMES, "exact_match": "Exact match", "mse": "MSE", "mae": "MAE"}
_BATCHED = re.compile(r"^(latency_ms|speedup)_b(\d+)$")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _split_and_metric(name: str) -> tuple[str | None, str]:
    """("test_mismatched", "accuracy") for "test_mismatched_accuracy"; (None, name) when no split prefixes it."""
    for split in sorted(SPLITS, key=len, reverse=True):
        if name.startswith(split + "_") and len(name) > len(split) + 1:
            metric = name[len(split) + 1:]
            return split, ALIASES.get(metric, metric)
    return None, name


def metric_label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " ").capitalize())


@dataclass
class ModelMetrics:
    """The numbers of one model (teacher or compressed)."""

    quality: dict = field(default_factory=dict)  # (metric, split or None) -> value
    quality_std: dict = field(default_factory=dict)
    parameters: int | None = None
    size_mb: float | None = None
    latency_ms: dict = field(default_factory=dict)  # batch size (or None) -> ms
    speedup: dict = field(default_factory=dict)  # batch size (or None) -> x
    shape: dict = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)  # a teacher ensemble's members and their own test accuracy
    fine_tune: dict = field(default_factory=dict)  # a teacher fine-tuned by bertlite: epochs, chosen epoch, metric

    @classmethod
    def parse(cls, values: dict, eval_split: str | None, batch: int | None) -> "ModelMetrics":
        out = cls()
        for key, value in values.items():
            if key == "ensemble" and isinstance(value, dict):
                alone = value.get("member_test_accuracy") or []
                out.ensemble = {"members": list(value.get("members") or []),
                                "member_test_accuracy": alone if all(_is_number(a) for a in alone) else []}
                continue
            if key == "fine_tune" and isinstance(value, dict):  # how a teacher fine-tuned by bertlite was chosen
                out.fine_tune = dict(value)
                continue
            if not _is_number(value):
                continue
            if key in ("parameters", "size_mb"):
                setattr(out, key, value)
            elif key == "latency_ms":
                out.latency_ms[batch] = value
            elif key == "speedup":
                out.speedup[batch] = value
            elif m := _BATCHED.match(key):
                getattr(out, m[1])[int(m[2])] = value
            elif key in SHAPE_FIELDS:
                out.shape[key] = value
            else:
                is_std = key.endswith("_std")
                name = key[:-4] if is_std else key
                split, metric = _split_and_metric(name)
                if split:
                    target = (metric, split)
                elif ALIASES.get(name, name) in QUALITY_METRICS:
                    target = (ALIASES.get(name, name), eval_split)
                else:
                    continue  # derived or unknown numbers (e.g. accuracy_vs_teacher) are not reported
                (out.quality_std if is_std else out.quality)[target] = value
        return out


@dataclass
class CardMetrics:
    teacher: ModelMetrics = field(default_factory=ModelMetrics)
    student: ModelMetrics = field(default_factory=ModelMetrics)
    eval_examples: dict = field(default_factory=dict)  # split -> number of examples
    seeds: list | None = None
    latency_setup: dict = field(default_factory=dict)
    command: str | None = None
    sources: list[str] = field(default_factory=list)  # files the numbers came from
    earlier: list[dict] = field(default_factory=list)  # figures of the models before later steps changed the weights
    filled_from_files: list[str] = field(default_factory=list)  # compressed-model facts read from the weights

    @property
    def quality_keys(self) -> list[tuple[str, str | None]]:
        keys = set(self.teacher.quality) | set(self.student.quality)
        split_rank = {s: i for i, s in enumerate(SPLITS)}
        return sorted(keys, key=lambda k: (split_rank.get(k[1], len(SPLITS)) if k[1] else len(SPLITS) - 0.5,
                                           k[0] != "accuracy", k[0]))

    @property
    def latency_batches(self) -> list:
        batches = set(self.teacher.latency_ms) | set(self.student.latency_ms) | set(self.student.speedup)
        return sorted(batches, key=lambda b: -1 if b is None else -b)

    def speedup(self, batch) -> float | None:
        if batch in self.student.speedup:
            return self.student.speedup[batch]
        t, s = self.teacher.latency_ms.get(batch), self.student.latency_ms.get(batch)
        return t / s if t is not None and s else None

    @property
    def measured(self) -> bool:
        """Whether anything beyond the facts of the files was recorded."""
        t, s = self.teacher, self.student
        return bool(t.quality or s.quality or t.latency_ms or s.latency_ms or t.parameters or t.size_mb)


def _validate(raw, where: str) -> dict:
    if not isinstance(raw, dict):
        raise BertliteError(f"The metrics in {where} must be a JSON object; see docs/hub.md for the expected keys.")
    raw = dict(raw)
    if "compressed" in raw and "student" not in raw:
        raw["student"] = raw.pop("compressed")
    for side in SIDES:
        values = raw.get(side, {})
        if not isinstance(values, dict):
            raise BertliteError(f"metrics[{side!r}] in {where} must be an object like {{\"test_accuracy\": 0.87}}.")
        for key in ("parameters", "size_mb", "latency_ms"):
            if values.get(key) is not None and not _is_number(values[key]):
                raise BertliteError(f"metrics[{side!r}][{key!r}] in {where} must be a number, got {values[key]!r}.")
    return raw


def read_card_metrics(folder, compression=None) -> CardMetrics:
    """Merge compression_config.metrics and metrics.json of a ModelFolder, then fill the compressed model's
    parameter count, size and shape from its files when they were not recorded."""
    merged: dict = {"teacher": {}, "student": {}}
    layers, sources = [], []
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
    setup = dict(merged.get("latency_setup") or merged.get("latency") or {})
    batch = setup.get("batch_size")
    eval_split = merged.get("eval_split")
    examples = merged.get("eval_examples")
    if _is_number(examples):
        examples = {eval_split: examples}
    metrics = CardMetrics(
        teacher=ModelMetrics.parse(merged["teacher"], eval_split, batch),
        student=ModelMetrics.parse(merged["student"], eval_split, batch),
        eval_examples=examples if isinstance(examples, dict) else {}, seeds=merged.get("seeds"),
        latency_setup=setup, command=redact_secrets(merged.get("command")), sources=sources,
    )
    if _is_number(merged.get("speedup")) and batch not in metrics.student.speedup:
        metrics.student.speedup[batch] = merged["speedup"]
    metrics.earlier = [_earlier(entry) for entry in merged.get("earlier") or [] if isinstance(entry, dict)]
    _use_benchmark_report(folder, metrics)
    student = metrics.student
    if folder.safetensors_files:
        if student.parameters is None:
            student.parameters = folder.num_parameters
            metrics.filled_from_files.append("parameter count")
        if student.size_mb is None:
            student.size_mb = round(folder.weights_size_mb, 2)
            metrics.filled_from_files.append("size")
        if "layers" not in student.shape and folder.config.get("num_hidden_layers"):
            student.shape.update(layers=folder.config["num_hidden_layers"], hidden_size=folder.config.get("hidden_size"))
            metrics.filled_from_files.append("shape")
    return metrics


def _earlier(entry: dict) -> dict:
    """One set-aside measurement (CompressionConfig.add_step): which step's model it describes, and its figures."""
    setup = entry.get("latency_setup") or {}
    student = ModelMetrics.parse(entry.get("student") or {}, None, setup.get("batch_size"))
    teacher = ModelMetrics.parse(entry.get("teacher") or {}, None, setup.get("batch_size"))
    for batch, ms in student.latency_ms.items():
        if batch not in student.speedup and teacher.latency_ms.get(batch):
            student.speedup[batch] = teacher.latency_ms[batch] / ms
    return {"after_step": entry.get("after_step"), "method": entry.get("method"), "student": student}


def _use_benchmark_report(folder, metrics: CardMetrics) -> None:
    """When the folder holds a `bertlite benchmark` report that measured this very folder, the card's two columns
    are that report's first model (the teacher) and this folder's row: both measured in one run, on this model."""
    from ..benchmark import REPORT_JSON

    path = os.path.join(folder.path, REPORT_JSON)
    if not os.path.isfile(path):
        return
    try:
        with open(path) as f:
            report = json.load(f)
        rows = list(report["models"])
    except (ValueError, KeyError, TypeError) as err:
        raise BertliteError(f"{path} is not a bertlite benchmark report: {err}") from err
    target = os.path.realpath(folder.path)
    own = next((r for r in rows if r.get("here")), None) or next(
        (r for r in rows if r.get("path") and os.path.realpath(r["path"]) == target), None)
    if own is None or rows[0] is own:
        return
    setup = report.get("setup") or {}

    def figures(row):
        return ModelMetrics.parse({k: v for k, v in row.items() if not k.endswith("_of_first")}, None, None)

    metrics.teacher, metrics.student = figures(rows[0]), figures(own)
    metrics.latency_setup = {"seq_len": setup.get("seq_len"), "threads": setup.get("threads"),
                             "OpenMP wait policy": setup.get("omp_wait_policy"), "measured_by": "bertlite benchmark"}
    metrics.command = redact_secrets(setup.get("command")) or metrics.command
    metrics.seeds = None
    metrics.filled_from_files = []
    metrics.sources.append(REPORT_JSON)


def record_command(folder: str, command: str | None) -> None:
    """Note in metrics.json (and compression_config.json's metrics) the command that produced the numbers, so that
    the card can show how to reproduce them. No-op without a command or without recorded metrics. Secrets in the
    command are replaced by "***"."""
    from ..record import CONFIG_NAME, CompressionConfig

    if not command:
        return
    command = redact_secrets(command)
    path = os.path.join(folder, METRICS_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            values = json.load(f)
        values["command"] = command
        write_json(path, values)
    if os.path.isfile(os.path.join(folder, CONFIG_NAME)):
        record = CompressionConfig.from_pretrained(folder)
        if record.metrics:
            record.metrics["command"] = command
            record.save_pretrained(folder)


def invoked_command(command: str) -> str | None:
    """`bertlite <command> ...` as typed in the shell, secrets replaced by "***", when this process is that command;
    None otherwise (e.g. the CLI called from Python, where sys.argv belongs to someone else)."""
    import shlex
    import sys

    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if program in ("bertlite", "__main__.py") and sys.argv[1:2] == [command]:
        return redact_secrets("bertlite " + shlex.join(sys.argv[1:]))
    return None
