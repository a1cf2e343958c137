"""Saving and reloading int8 models: safetensors + quantization_config.json, no pickle.

A folder holds
- `config.json` (the model's Transformers config, to rebuild the architecture),
- `int8_model.safetensors`: for each quantized Linear `<name>.weight_int8` (int8), `<name>.weight_scale` (fp32),
  `<name>.weight_zero_point` (int32), `<name>.bias`; every other tensor in fp32 under its usual name,
  or, for the onnxruntime backend, `model_int8.onnx`,
- `quantization_config.json`: settings, backend, the list of quantized modules.
The weights file deliberately is not `model.safetensors`: `from_pretrained` must fail on this folder rather than
load int8 buffers into a float model and silently run random weights.

Reloading builds the same quantized modules from the stored integers (never re-quantizing floats), so the
reloaded model's logits are bit-identical to those of the model that was saved.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os

import torch

from ..record import VERSION as __version__
from ..errors import BertliteError
from .backends import get_backend
from .backends.base import Int8Settings
from .backends.onnxruntime_backend import ONNX_FILE, OnnxInt8Model
from .config import QuantizationConfig
from .convert import RECORD_ATTR, QuantizationRecord, set_submodule
from .embedding import Int8Embedding
from .weights import QuantizedWeight

QUANTIZATION_CONFIG_NAME = "quantization_config.json"
WEIGHTS_NAME = "int8_model.safetensors"
FORMAT = "bertlite-int8"
FORMAT_VERSION = 1
INT8_SUFFIXES = ("weight_int8", "weight_scale", "weight_zero_point")
# Classes are rebuilt by qualified name from a JSON file; only these packages may provide them.
TRUSTED_CLASS_PREFIXES = ("transformers.", "bertlite.")


def is_quantized_folder(path) -> bool:
    """True for a folder written by `save_quantized` (any backend)."""
    file = os.path.join(str(path), QUANTIZATION_CONFIG_NAME)
    if not os.path.isfile(file):
        return False
    try:
        with open(file) as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def _qualified_name(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _record_of(model) -> QuantizationRecord:
    record = getattr(model, RECORD_ATTR, None)
    if record is None:
        raise BertliteError("This model was not quantized by bertlite (quantize_model); there is nothing int8 to save.")
    return record


def _int8_tensors(prefix: str, weight: QuantizedWeight) -> dict:
    return {f"{prefix}.weight_int8": weight.int8, f"{prefix}.weight_scale": weight.scale.to(torch.float32),
            f"{prefix}.weight_zero_point": weight.zero_point.to(torch.int32)}


def quantized_state_dict(model) -> dict[str, torch.Tensor]:
    """Plain tensors only (int8 and fp32): what goes into the safetensors file."""
    record = _record_of(model)
    backend = get_backend(record.config.backend, check=False)
    quantized = set(record.linear_modules) | set(record.embedding_modules)
    tensors = {}
    for key, value in model.state_dict().items():
        module_name = key.rpartition(".")[0]
        if module_name not in quantized:
            tensors[key] = value
    for name in record.linear_modules:
        read = backend.read_linear(model.get_submodule(name))
        if read is None:
            raise BertliteError(f"Module {name!r} is not a {backend.name} int8 layer any more; was the model modified after quantization?")
        weight, bias = read
        tensors.update(_int8_tensors(name, weight))
        if bias is not None:
            tensors[f"{name}.bias"] = bias
    for name in record.embedding_modules:
        tensors.update(_int8_tensors(name, model.get_submodule(name).quantized_weight))
    # safetensors refuses tensors that share memory (tied weights): give each its own contiguous copy.
    seen, out = set(), {}
    for key, value in tensors.items():
        value = value.detach().contiguous()
        pointer = (value.untyped_storage().data_ptr(), value.storage_offset())
        out[key] = value.clone() if pointer in seen else value
        seen.add(pointer)
    return out


def save_quantized(model, folder: str, fp32_model=None) -> str:
    """Write the int8 model (and, when given, the fp32 model under `folder/fp32/`). Returns the folder."""
    from safetensors.torch import save_file

    record = _record_of(model)
    os.makedirs(folder, exist_ok=True)
    config = model.config
    config.architectures = [type(model).__name__] if not isinstance(model, OnnxInt8Model) else config.architectures
    config.save_pretrained(folder)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "bertlite_version": __version__,
        "torch_version": torch.__version__, "backend": record.config.backend, "settings": record.config.to_dict(),
        "resolved": dataclasses.asdict(record.settings), "linear_modules": record.linear_modules,
        "embedding_modules": record.embedding_modules, "fp32_linear_modules": record.fp32_linear_modules,
    }
    if isinstance(model, OnnxInt8Model):
        model.save(folder)
        meta.update(weights_file=ONNX_FILE, output_name=model.output_name, onnx_fused=model.fused)
    else:
        save_file(quantized_state_dict(model), os.path.join(folder, WEIGHTS_NAME), metadata={"format": "pt", "bertlite": FORMAT})
        meta.update(weights_file=WEIGHTS_NAME, model_class=_qualified_name(type(model)))
    if fp32_model is not None:
        fp32_model.save_pretrained(os.path.join(folder, "fp32"))
    with open(os.path.join(folder, QUANTIZATION_CONFIG_NAME), "w") as f:
        json.dump(meta, f, indent=2)
    return folder


def read_quantization_meta(folder: str) -> dict:
    folder = str(folder)
    if not os.path.isdir(folder):
        raise BertliteError(f"{folder!r} is not a folder.")
    if not is_quantized_folder(folder):
        raise BertliteError(f"{folder!r} holds no bertlite int8 model ({QUANTIZATION_CONFIG_NAME} missing or not "
                            "written by bertlite). Make one with `bertlite quantize --model DIR`.")
    with open(os.path.join(folder, QUANTIZATION_CONFIG_NAME)) as f:
        meta = json.load(f)
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise BertliteError(f"{folder!r} was written by a newer bertlite (format {meta['format_version']}); upgrade bertlite.")
    return meta


# Where bertlite's own model classes lived in folders written by earlier versions.
MOVED_CLASSES = {"bertlite.structured.modeling_bertlite.": "bertlite.modeling.modeling_bertlite."}


def _model_class(qualified: str):
    for old, new in MOVED_CLASSES.items():
        if qualified.startswith(old):
            qualified = new + qualified[len(old):]
    if qualified.startswith("bertlite."):
        from .. import modeling  # noqa: F401  (a pruned model's config must be known to AutoConfig too)
    if not qualified.startswith(TRUSTED_CLASS_PREFIXES):
        raise BertliteError(f"Refusing to build model class {qualified!r}: only transformers and bertlite classes are loaded.")
    module_name, _, class_name = qualified.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise BertliteError(f"Model class {qualified!r} is not available in this environment ({err}).") from err


def _skeleton(folder: str, qualified_class: str):
    """The architecture, ordinarily initialised: every saved tensor is overwritten from the file, and building it
    the ordinary way keeps the constants models create for themselves (position ids, ...) right. Skipping the
    initialisation would save a second on bert-base at the risk of garbage in those non-saved buffers."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    return _model_class(qualified_class)._from_config(config).eval()


def _weight_from(tensors: dict, name: str, per_channel: bool) -> QuantizedWeight:
    try:
        int8, scale, zero_point = (tensors.pop(f"{name}.{s}") for s in INT8_SUFFIXES)
    except KeyError as err:
        raise BertliteError(f"The int8 weights file lacks {err.args[0]!r}: the folder is incomplete or corrupt.") from err
    return QuantizedWeight(int8, scale, zero_point, per_channel or scale.numel() > 1)


def _fit_fp32_linears(model, tensors: dict) -> None:
    """Structurally pruned layers whose config does not record their shape: size each remaining fp32 Linear
    from the file instead of from the config."""
    for name, module in list(model.named_modules()):
        weight = tensors.get(f"{name}.weight")
        if isinstance(module, torch.nn.Linear) and weight is not None and weight.shape != module.weight.shape:
            bias = tensors.get(f"{name}.bias")
            resized = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
            set_submodule(model, name, resized)


def load_quantized(folder, backend: str | None = None, compile: bool | str = False, threads: int | None = None):
    """Load an int8 folder made by `save_quantized`/`quantize_folder`.

    backend: None = the backend it was saved with; a torch-side folder may also be opened with the other
    module backend ("torch" <-> "torchao"): same integers, different kernels, so outputs differ slightly.
    compile: True (or "inductor"): wrap in torch.compile with inductor freezing, the fast path for the torchao
        backend; "pt2e": lower the same int8 weights through PT2E and inductor (`compile_pt2e`: the fastest CPU path
        measured, inputs padded to fixed shapes). Off by default because the first call per input shape then
        compiles (tens of seconds), and compiled kernels round differently (~1e-3 on logits) from the eager ones
        the folder was checked with.
    threads: ONNX Runtime intra-op threads (default: torch.get_num_threads()).
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig

    folder = str(folder)
    meta = read_quantization_meta(folder)
    settings = QuantizationConfig.from_dict(meta["settings"])
    saved_backend = meta["backend"]
    backend_name = backend or saved_backend
    if saved_backend == "onnxruntime" or backend_name == "onnxruntime":
        if backend_name != saved_backend:
            raise BertliteError(f"{folder!r} was saved with the {saved_backend!r} backend; an ONNX Runtime folder and a "
                                "PyTorch int8 folder cannot be converted into each other. Quantize again with the backend you need.")
        get_backend("onnxruntime")
        model = OnnxInt8Model.load(folder, AutoConfig.from_pretrained(folder), meta["output_name"], meta["onnx_fused"], threads)
        record = QuantizationRecord(settings, Int8Settings(**meta["resolved"]), meta["linear_modules"],
                                    meta["embedding_modules"], meta["fp32_linear_modules"])
        setattr(model, RECORD_ATTR, record)
        return model

    impl = get_backend(backend_name)
    weights_path = os.path.join(folder, meta["weights_file"])
    if not os.path.isfile(weights_path):
        raise BertliteError(f"{folder!r} lacks its weights file {meta['weights_file']}.")
    tensors = load_file(weights_path)
    if backend_name == saved_backend:
        resolved = Int8Settings(**meta["resolved"])
        if settings.reduce_range is None and impl.reduce_range_at_runtime(resolved):
            resolved = impl.resolve(settings)  # "auto" on a run-time choice: decide for this machine
    else:  # the other module backend reads the same integers with its own defaults
        settings = dataclasses.replace(settings, backend=backend_name, activations=None)
        resolved = impl.resolve(settings)
    model = _skeleton(folder, meta["model_class"])
    for name in meta["linear_modules"]:
        weight = _weight_from(tensors, name, settings.per_channel)
        set_submodule(model, name, impl.make_linear(weight, tensors.pop(f"{name}.bias", None), resolved))
    for name in meta["embedding_modules"]:
        padding_idx = getattr(model.get_submodule(name), "padding_idx", None)
        set_submodule(model, name, Int8Embedding(_weight_from(tensors, name, True), padding_idx))
    _fit_fp32_linears(model, tensors)
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    quantized = set(meta["linear_modules"]) | set(meta["embedding_modules"])
    missing = [k for k in missing if k.rpartition(".")[0] not in quantized]
    if missing or unexpected:
        raise BertliteError(f"{folder!r} does not match its architecture (missing {missing[:5]}, unexpected {unexpected[:5]}).")
    still_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if still_meta:
        raise BertliteError(f"{folder!r} did not provide tensors for {still_meta[:5]}.")
    model.eval()
    setattr(model, RECORD_ATTR, QuantizationRecord(settings, resolved, meta["linear_modules"], meta["embedding_modules"],
                                                   meta["fp32_linear_modules"]))
    if compile == "pt2e":
        from .pt2e import compile_pt2e

        return compile_pt2e(model)
    if compile in (True, "inductor"):
        from .backends.torchao_backend import compile_for_inference

        return compile_for_inference(model)
    if compile:
        raise BertliteError(f"compile={compile!r}: use False, True / 'inductor' (torch.compile) or 'pt2e'.")
    return model
