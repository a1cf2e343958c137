"""`quantize_folder`: saved fp32 model in, saved int8 model out (what `bertlite quantize` runs)."""

from __future__ import annotations

import os
import warnings

from ..jobs import prepare_output_dir, save_model_folder
from ..record import CompressionConfig
from ..errors import BertliteError
from ..evaluation import folder_size_mb
from ..loading import default_output_dir, display_name, load_model, load_tokenizer, resolve_model_name
from .check import QuantizationReport, compare_with_fp32
from .config import QuantizationConfig
from .convert import make_config, quantize_model
from .serialization import save_quantized


def load_fp32_model(name_or_path: str):
    """The model a folder holds, with its own head (a bare encoder stays a bare encoder); int8 folders are refused."""
    return load_model(name_or_path)


ONNX_EXPORT_DIR = "onnx"  # <int8 folder>/onnx/: model_int8.onnx, config and tokenizer, deployable with onnxruntime alone


def export_onnx_int8(fp32, int8, config: QuantizationConfig, tokenizer, folder: str, data=None, *,
                     max_accuracy_drop: float = 0.5, min_label_agreement: float = 0.99) -> QuantizationReport | None:
    """The fp32 model quantized by ONNX Runtime with the same settings (int8 weights per channel, activations at run
    time, the same layers kept in fp32), saved as an onnxruntime int8 folder, and compared with the PyTorch int8
    model `int8` on `data` (the task split or the sample sentences). Returns that comparison (None without tokenizer)."""
    from dataclasses import replace

    onnx_config = replace(config, backend="onnxruntime", activations=None)  # ORT quantizes activations per tensor
    onnx_model = quantize_model(fp32, onnx_config)
    save_quantized(onnx_model, folder)
    if tokenizer is None:
        return None
    tokenizer.save_pretrained(folder)
    return compare_with_fp32(int8, onnx_model, tokenizer, data, max_accuracy_drop=max_accuracy_drop,
                             min_label_agreement=min_label_agreement)


def check_data(task: str | None, split: str = "test", max_examples: int | None = None):
    """The dataset the fp32/int8 comparison runs on and the task's MetricSpec: a task split, or (None, None) for
    the built-in sample sentences."""
    if not task:
        return None, None
    from ..data import load_task

    from ..metrics import metric_spec

    dsd, info = load_task(task)
    if split not in dsd:
        raise BertliteError(f"Task {task!r} has no {split!r} split; it has {', '.join(dsd)}.")
    data = dsd[split]
    return (data.select(range(min(max_examples, len(data)))) if max_examples else data), metric_spec(info)


def quantize_folder(model: str, output_dir: str | None = None, config: QuantizationConfig | dict | None = None, *,
                    task: str | None = None, check_split: str = "test", max_check_examples: int | None = None,
                    keep_fp32_model: bool = False, max_accuracy_drop: float = 0.5, min_label_agreement: float = 0.99,
                    export: str | None = None, **settings) -> tuple[str, QuantizationReport | None]:
    """Quantize a saved model folder (or alias/Hub id) and write the int8 folder.

    export="onnx": also write `<output_dir>/onnx/`, the same model as one int8 ONNX file (`model_int8.onnx`, runnable
    with onnxruntime alone) with its tokenizer, checked against the PyTorch int8 model with the same thresholds as
    the fp32 check (`onnx_report` in the record's quantization metrics).
    Returns (output folder, fidelity report or None when the folder has no tokenizer to run the check with).
    """
    if export not in (None, "onnx"):
        raise BertliteError(f"--export {export!r}: the export format bertlite writes is 'onnx'.")
    config = make_config(config, **settings)
    if not isinstance(model, (str, os.PathLike)):
        raise BertliteError(f"quantize_folder reads a saved model: pass its folder, Hub id or alias, not a {type(model).__name__} "
                            "(quantize a model object with quantize_model).")
    output_dir = os.fspath(output_dir or default_output_dir(model))
    if os.path.abspath(output_dir) == os.path.abspath(str(model)):
        raise BertliteError("--output_dir must differ from --model: the fp32 folder is the input.")
    prepare_output_dir(output_dir, create=False)  # a file or a read-only place fails now, not after the work
    fp32 = load_fp32_model(model)
    data, spec = check_data(task, check_split, max_check_examples)  # fail on a bad task before the slow work
    int8 = quantize_model(fp32, config)
    try:
        tokenizer = load_tokenizer(model)
    except BertliteError as err:
        tokenizer = None
        warnings.warn(f"No tokenizer in {model!r} ({err}); the int8 folder will have none and the fidelity check is skipped.",
                      stacklevel=2)
    report = None
    if tokenizer is not None:
        report = compare_with_fp32(fp32, int8, tokenizer, data, max_accuracy_drop=max_accuracy_drop,
                                   min_label_agreement=min_label_agreement, spec=spec)

    source = resolve_model_name(model)
    history = CompressionConfig.load_or_new(source if os.path.isdir(source) else None, base_model=display_name(model))
    record = int8.bertlite_quantization
    history.add_step("quantization", backend=config.backend, per_channel=config.per_channel,
                     reduce_range=record.settings.reduce_range, activations=record.settings.activations,
                     keep_fp32=config.keep_fp32,
                     quantize_embeddings=config.quantize_embeddings, int8_layers=len(record.linear_modules),
                     fp32_layers=record.fp32_linear_modules, check_task=task)

    def write(staged: str) -> None:  # the int8 model, then its size as written
        save_quantized(int8, staged, fp32_model=fp32 if keep_fp32_model else None)
        sizes = {"fp32_mb": round(folder_size_mb(source), 2) if os.path.isdir(source) else None,
                 "int8_mb": round(folder_size_mb(staged), 2)}
        history.metrics["quantization"] = {**sizes, **(report.to_dict() if report else {})}
        if report is not None and task and not max_check_examples:  # the whole split: the card's column
            history.measured(**{f"{check_split}_accuracy": report.int8_accuracy,
                                **{f"{check_split}_{metric}": value for metric, value in report.int8_metrics.items()}})
        if export == "onnx":
            onnx_report = export_onnx_int8(fp32, int8, config, tokenizer, os.path.join(staged, ONNX_EXPORT_DIR), data,
                                           max_accuracy_drop=max_accuracy_drop, min_label_agreement=min_label_agreement)
            history.metrics["quantization"]["onnx_export"] = {"folder": ONNX_EXPORT_DIR,
                                                              **(onnx_report.to_dict() if onnx_report else {})}

    # One atomic write: an interrupted run leaves the old folder, or one every loader refuses.
    save_model_folder(output_dir, tokenizer=tokenizer, record=history, write=write)
    return output_dir, report
