"""Dynamic int8 quantization of BERT models: int8 weights, activations quantized per batch at run time.

Python API:
    quantize_model(model, backend="torch", keep_fp32=[...], per_channel=True, reduce_range=None, quantize_embeddings=False)
    save_quantized(model, folder) / load_quantized(folder) / is_quantized_folder(folder)
        (a changed, corrupt or incomplete folder raises Int8FolderError naming the bad entry)
    quantize_folder(model_dir, output_dir, ...)   # what `bertlite quantize` runs
    compare_with_fp32(fp32_model, int8_model, tokenizer, dataset_or_texts)   # fidelity check
    compile_pt2e(int8_model) / load_quantized(folder, compile="pt2e")   # fastest CPU path (PT2E + inductor)
    prepare_qat(model) / convert_qat(model)   # quantization-aware training
"""

from .backends import BACKENDS, available_backends, get_backend
from .backends.onnxruntime_backend import OnnxInt8Model, export_onnx
from .backends.torchao_backend import compile_for_inference
from .config import DEFAULT_KEEP_FP32, QuantizationConfig
from .check import QuantizationAccuracyWarning, QuantizationReport, compare_with_fp32
from .convert import QuantizationRecord, quantize_model
from .folder import load_fp32_model, quantize_folder
from .pt2e import Pt2eInt8Model, compile_pt2e
from .qat import FakeQuantLinear, convert_qat, prepare_qat
from .serialization import is_quantized_folder, load_quantized, save_quantized
from .validation import Int8FolderError
from .weights import QuantizedWeight, quantize_weight

__all__ = [
    "BACKENDS", "DEFAULT_KEEP_FP32", "FakeQuantLinear", "Int8FolderError", "OnnxInt8Model", "QuantizationAccuracyWarning",
    "QuantizationConfig", "QuantizationRecord", "QuantizationReport", "QuantizedWeight", "available_backends",
    "Pt2eInt8Model", "compare_with_fp32", "compile_for_inference", "compile_pt2e", "convert_qat", "export_onnx", "get_backend", "is_quantized_folder",
    "load_fp32_model", "load_quantized", "prepare_qat", "quantize_folder", "quantize_model", "quantize_weight",
    "save_quantized",
]
