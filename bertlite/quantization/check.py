"""Fidelity check: does the int8 model still say what the fp32 model says?

Compares logits on task data or sample sentences (max/mean difference, argmax agreement, task accuracy when
labels exist) and, to say *where* precision is lost, measures each quantized layer on its own: a forward hook on
the fp32 layer feeds the very same input to its int8 counterpart, so each number is that layer's own error,
not the error accumulated upstream.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import torch

from ..errors import BertliteError
from ..evaluation import predict
from ..metrics import ACCURACY_ONLY, compute_metrics, generic_spec
from .convert import RECORD_ATTR, quantize_model

# Used when no task data is given: varied lengths and topics, a few negations and a sentence pair-like text.
SAMPLE_SENTENCES = [
    "The movie was a delight from start to finish.",
    "I would not recommend this restaurant to anyone.",
    "The quarterly report shows revenue grew by twelve percent.",
    "Can you tell me how to get to the train station?",
    "It rained all weekend, so we stayed inside and read.",
    "The plot is thin, the acting wooden and the ending predictable.",
    "Our new phone has a faster processor and a better camera.",
    "She won the award for her research on protein folding.",
    "This is not bad at all, actually quite good.",
    "The service was slow but the food made up for it.",
    "Scientists discovered a new species of frog in the rainforest.",
    "I can't believe how boring that lecture was.",
    "Please remember to water the plants while I am away.",
    "An absolute masterpiece of modern cinema, moving and funny.",
    "The software update broke my printer driver again.",
    "We walked along the beach as the sun went down over the sea.",
]


class QuantizationAccuracyWarning(UserWarning):
    """The int8 model disagrees with the fp32 model more than the thresholds allow."""


@dataclass
class LayerError:
    name: str
    relative_error: float  # ||int8(x) - fp32(x)|| / ||fp32(x)|| on the same input x


@dataclass
class QuantizationReport:
    num_examples: int
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    label_agreement: float | None  # argmax agreement (classification heads only)
    fp32_accuracy: float | None = None
    int8_accuracy: float | None = None
    accuracy_drop_points: float | None = None  # (fp32 - int8) of the task's main metric, in percentage points
    metric: str | None = None  # the task's main metric (bertlite.metrics), when labels exist
    fp32_metrics: dict = field(default_factory=dict)  # the task's metrics of each model, when labels exist
    int8_metrics: dict = field(default_factory=dict)
    worst_layers: list[LayerError] = field(default_factory=list)
    layer_errors_note: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"fp32 vs int8 on {self.num_examples} examples: max |logit diff| {self.max_abs_logit_diff:.4f}, "
                 f"mean {self.mean_abs_logit_diff:.4f}"]
        if self.label_agreement is not None:
            lines.append(f"label agreement {100 * self.label_agreement:.2f}%")
        if self.metric is not None:
            fp32, int8 = self.fp32_metrics[self.metric], self.int8_metrics[self.metric]
            lines.append(f"{self.metric} fp32 {100 * fp32:.2f} -> int8 {100 * int8:.2f} "
                         f"(drop {self.accuracy_drop_points:+.2f} pt)")
        if self.worst_layers:
            worst = ", ".join(f"{e.name} ({100 * e.relative_error:.2f}%)" for e in self.worst_layers[:3])
            lines.append(f"largest per-layer errors: {worst}")
        lines.extend(f"WARNING: {p}" for p in self.problems)
        return "\n".join(lines)


def _as_dataset(data):
    from datasets import Dataset

    if data is None:
        data = SAMPLE_SENTENCES
    if isinstance(data, (list, tuple)):
        return Dataset.from_dict({"text": [str(t) for t in data]})
    return data


def _unwrap(model):
    return getattr(model, "_orig_mod", model)  # torch.compile wraps the module


class _LogitsView(torch.nn.Module):
    """A bare encoder has no logits: compare its [CLS] hidden state instead (evaluation.predict reads .logits)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **batch):
        from transformers.modeling_outputs import ModelOutput

        out = self.model(**batch)
        logits = out["logits"] if "logits" in out else out["last_hidden_state"]
        # Per-token outputs vary in length between batches: keep the first token's, which predict can stack.
        return ModelOutput(logits=logits[:, 0] if logits.dim() == 3 else logits)


def _is_sequence_classifier(model) -> bool:
    return type(_unwrap(model)).__name__.endswith("ForSequenceClassification")


@torch.no_grad()
def layer_errors(fp32_model, int8_model, tokenizer, dataset, max_examples: int = 64, max_length: int = 128,
                 batch_size: int = 16) -> list[LayerError]:
    """Each quantized layer's own relative output error, worst first."""
    record = getattr(int8_model, RECORD_ATTR)
    int8_model = _unwrap(int8_model)
    names = list(record.linear_modules) + list(record.embedding_modules)
    sums = {n: [0.0, 0.0] for n in names}  # squared error, squared norm

    def hook_for(name):
        quantized = int8_model.get_submodule(name)

        def hook(module, inputs, output):
            diff = quantized(*inputs).float() - output.float()
            sums[name][0] += float(diff.pow(2).sum())
            sums[name][1] += float(output.float().pow(2).sum())
        return hook

    handles = [fp32_model.get_submodule(n).register_forward_hook(hook_for(n)) for n in names]
    try:
        subset = dataset.select(range(min(max_examples, len(dataset))))
        predict(_LogitsView(fp32_model), tokenizer, subset, batch_size=batch_size, max_length=max_length, desc=False)
    finally:
        for handle in handles:
            handle.remove()
    errors = [LayerError(n, (e / max(norm, 1e-30)) ** 0.5) for n, (e, norm) in sums.items()]
    return sorted(errors, key=lambda e: e.relative_error, reverse=True)


def _score(report: QuantizationReport, spec, fp32_logits, int8_logits, labels) -> None:
    """Both models' task metrics; the drop of the main metric in points (fp32_/int8_accuracy kept for
    classification, the names earlier reports used)."""
    report.metric = spec.main
    report.fp32_metrics = compute_metrics(spec, fp32_logits, labels)
    report.int8_metrics = compute_metrics(spec, int8_logits, labels)
    report.accuracy_drop_points = 100 * (report.fp32_metrics[spec.main] - report.int8_metrics[spec.main])
    if not spec.is_regression:
        accuracy = compute_metrics(ACCURACY_ONLY, fp32_logits, labels), compute_metrics(ACCURACY_ONLY, int8_logits, labels)
        report.fp32_accuracy, report.int8_accuracy = accuracy[0]["accuracy"], accuracy[1]["accuracy"]


def compare_with_fp32(fp32_model, int8_model, tokenizer, data=None, *, batch_size: int = 32, max_length: int = 128,
                      max_accuracy_drop: float = 0.5, min_label_agreement: float = 0.99, top_layers: int = 5,
                      layer_examples: int = 64, warn: bool = True, spec=None) -> QuantizationReport:
    """Compare an int8 model with its fp32 original.

    data: a `datasets.Dataset` with a `text` (and optional `text_pair`, `label`) column, a list of strings, or
    None for built-in sample sentences. With labels, both models are scored by the task's metrics (`spec`, a
    bertlite.metrics.MetricSpec; default: accuracy and macro-F1, or Pearson/Spearman for a single-output regression
    head), and max_accuracy_drop (percentage points) applies to the main metric. With `warn`, a
    QuantizationAccuracyWarning names the layers with the largest error when a threshold is passed.
    """
    dataset = _as_dataset(data)
    fp32_model.eval()
    fp32_logits = predict(_LogitsView(fp32_model), tokenizer, dataset, batch_size, max_length, desc="fp32 check")
    int8_logits = predict(_LogitsView(int8_model), tokenizer, dataset, batch_size, max_length, desc="int8 check")
    diff = (fp32_logits - int8_logits).abs()
    is_classifier = _is_sequence_classifier(fp32_model) and fp32_logits.shape[-1] > 1
    report = QuantizationReport(
        num_examples=len(dataset), max_abs_logit_diff=float(diff.max()), mean_abs_logit_diff=float(diff.mean()),
        label_agreement=float((fp32_logits.argmax(-1) == int8_logits.argmax(-1)).float().mean()) if is_classifier else None,
    )
    is_regression = _is_sequence_classifier(fp32_model) and fp32_logits.shape[-1] == 1
    if (is_classifier or is_regression) and "label" in dataset.column_names:
        _score(report, spec or generic_spec("check", is_regression), fp32_logits, int8_logits, dataset["label"])

    record = getattr(int8_model, RECORD_ATTR, None) or getattr(_unwrap(int8_model), RECORD_ATTR, None)
    if record is not None:
        probe = int8_model
        if record.config.backend == "onnxruntime":
            # An ONNX graph has no per-layer modules: the same settings on the torch kernels stand in for it.
            try:
                probe = quantize_model(fp32_model, record.config, backend="torch")
                report.layer_errors_note = "per-layer errors measured with the torch backend standing in for the ONNX graph"
            except BertliteError:
                probe = None
                report.layer_errors_note = "no per-layer errors: the ONNX graph has no layers to probe and torch int8 kernels are missing"
        elif getattr(int8_model, "is_compiled_graph", False):  # PT2E: its layers were fused away
            probe = quantize_model(fp32_model, record.config)
            report.layer_errors_note = "per-layer errors measured on the eager int8 modules the graph was built from"
        if probe is not None:
            report.worst_layers = layer_errors(fp32_model, probe, tokenizer, dataset, layer_examples, max_length)[:top_layers]

    if report.accuracy_drop_points is not None and report.accuracy_drop_points > max_accuracy_drop:
        report.problems.append(f"{report.metric} dropped by {report.accuracy_drop_points:.2f} points (threshold {max_accuracy_drop}).")
    if report.label_agreement is not None and report.label_agreement < min_label_agreement:
        report.problems.append(f"int8 and fp32 agree on only {100 * report.label_agreement:.2f}% of labels "
                               f"(threshold {100 * min_label_agreement:.1f}%).")
    if report.problems and warn:
        worst = ", ".join(e.name for e in report.worst_layers[:3]) or "unknown"
        warnings.warn(" ".join(report.problems) + f" Layers with the largest int8 error: {worst}. Consider keeping "
                      "them in fp32 (--keep-fp32 NAME), per-channel weights, or quantization-aware training.",
                      QuantizationAccuracyWarning, stacklevel=2)
    return report
