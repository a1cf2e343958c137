"""`quantize_folder`: saved fp32 model in, saved int8 model out (what `bertlite quantize` runs)."""

from __future__ import annotations

import os
import warnings

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
                    **settings) -> tuple[str, QuantizationReport | None]:
    """Quantize a saved model folder (or alias/Hub id) and write the int8 folder.

    Returns (output folder, fidelity report or None when the folder has no tokenizer to run the check with).
    """
    config = make_config(config, **settings)
    fp32 = load_fp32_model(model)
    output_dir = output_dir or default_output_dir(model)
    if os.path.abspath(output_dir) == os.path.abspath(str(model)):
        raise BertliteError("--output-dir must differ from --model: the fp32 folder is the input.")
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
    save_quantized(int8, output_dir, fp32_model=fp32 if keep_fp32_model else None)
    if tokenizer is not None:
        tokenizer.save_pretrained(output_dir)

    source = resolve_model_name(model)
    history = CompressionConfig.load_or_new(source if os.path.isdir(source) else None, base_model=display_name(model))
    record = int8.bertlite_quantization
    history.add_step("quantization", backend=config.backend, per_channel=config.per_channel,
                     reduce_range=record.settings.reduce_range, activations=record.settings.activations,
                     keep_fp32=config.keep_fp32,
                     quantize_embeddings=config.quantize_embeddings, int8_layers=len(record.linear_modules),
                     fp32_layers=record.fp32_linear_modules, check_task=task)
    sizes = {"fp32_mb": round(folder_size_mb(source), 2) if os.path.isdir(source) else None,
             "int8_mb": round(folder_size_mb(output_dir), 2)}
    history.metrics["quantization"] = {**sizes, **(report.to_dict() if report else {})}
    history.save_pretrained(output_dir)
    return output_dir, report
