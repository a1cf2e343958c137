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
from ..record import write_json, write_text
from ..errors import BertliteError, check_path
from ..loading import INT8_FORMAT, QUANTIZATION_CONFIG_FILE, is_int8_folder
from .backends import BACKENDS, get_backend
from .backends.base import Int8Backend, Int8Settings
from .backends.onnxruntime_backend import ONNX_FILE, OnnxInt8Model
from .config import QuantizationConfig
from .convert import RECORD_ATTR, QuantizationRecord, set_submodule
from .embedding import Int8Embedding
from .validation import (
    CHECKSUM_KEY,
    SETTINGS_DIGEST_KEY,
    SETTINGS_METADATA_KEY,
    Int8FolderError,
    TensorChecker,
    architecture_of,
    canonical_settings,
    check_bound_settings,
    check_checksum,
    check_meta,
    check_resolved,
    check_settings_digest,
    folder_error,
    settings_digest,
    sha256_file,
)
from .weights import INT8_RANGE, QuantizedWeight

QUANTIZATION_CONFIG_NAME = QUANTIZATION_CONFIG_FILE
WEIGHTS_NAME = "int8_model.safetensors"
FORMAT = INT8_FORMAT
FORMAT_VERSION = 1
INT8_SUFFIXES = ("weight_int8", "weight_scale", "weight_zero_point")
# Classes are rebuilt by qualified name from a JSON file; only these packages may provide them.
TRUSTED_CLASS_PREFIXES = ("transformers.", "bertlite.")


def is_quantized_folder(path) -> bool:
    """True for a folder written by `save_quantized` (any backend): the loader's own check of the marker."""
    return is_int8_folder(path)


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


def _write_atomic(path: str, write) -> None:
    """`write(temporary path)`, then rename it over `path`: a crash leaves the old file or none, never half a file
    that a later load would take for the whole."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_quantized(model, folder: str, fp32_model=None) -> str:
    """Write the int8 model (and, when given, the fp32 model under `folder/fp32/`). Returns the folder.

    The weights file records the settings it is read with, and quantization_config.json the weights file's sha256,
    so that `load_quantized` finds any later change to either (see validation.py)."""
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
        meta.update(weights_file=ONNX_FILE, output_name=model.output_name, onnx_fused=model.fused)
        # An ONNX file has no header of ours to record them in: a digest in the JSON at least shows edits.
        meta[SETTINGS_DIGEST_KEY] = settings_digest(meta, _architecture(folder))
        write_text(os.path.join(folder, ONNX_FILE), model.onnx_bytes)
    else:
        meta.update(weights_file=WEIGHTS_NAME, model_class=_qualified_name(type(model)))
        header = {"format": "pt", "bertlite": FORMAT, SETTINGS_METADATA_KEY: canonical_settings(meta, _architecture(folder))}
        tensors = quantized_state_dict(model)
        _write_atomic(os.path.join(folder, WEIGHTS_NAME), lambda tmp: save_file(tensors, tmp, metadata=header))
    meta[CHECKSUM_KEY] = sha256_file(os.path.join(folder, meta["weights_file"]))
    if fp32_model is not None:
        fp32_model.save_pretrained(os.path.join(folder, "fp32"))
    write_json(os.path.join(folder, QUANTIZATION_CONFIG_NAME), meta)
    return folder


def read_quantization_meta(folder: str) -> dict:
    folder = check_path(folder, "the int8 folder")
    if not os.path.isdir(folder):
        raise Int8FolderError(f"{folder!r} is not a folder.")
    from ..loading import check_complete

    check_complete(folder)
    path = os.path.join(folder, QUANTIZATION_CONFIG_NAME)
    if not os.path.isfile(path):
        raise Int8FolderError(f"{folder!r} holds no bertlite int8 model ({QUANTIZATION_CONFIG_NAME} missing). "
                              "Make one with `bertlite quantize --model DIR`.")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME, f"cannot be read as JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise Int8FolderError(f"{folder!r} holds no bertlite int8 model ({QUANTIZATION_CONFIG_NAME} was not written "
                              "by bertlite). Make one with `bertlite quantize --model DIR`.")
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME, f"'format_version' must be an integer, not {version!r}")
    if version > FORMAT_VERSION:
        raise Int8FolderError(f"{folder!r} was written by a newer bertlite (format {version}); upgrade bertlite.")
    return meta


# Where bertlite's own model classes lived in folders written by earlier versions.
MOVED_CLASSES = {"bertlite.structured.modeling_bertlite.": "bertlite.modeling.modeling_bertlite."}


def _architecture(folder: str) -> dict:
    """config.json as written (not as this Transformers version would fill it in), less its cosmetic entries."""
    try:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise folder_error(folder, "config.json", f"cannot be read as JSON ({err})") from err
    if not isinstance(config, dict):
        raise folder_error(folder, "config.json", "is not a JSON object")
    return architecture_of(config)


def _model_class(folder: str, qualified: str):
    """Classes are rebuilt by name from a JSON file: only Transformers/bertlite model classes qualify."""
    from transformers import PreTrainedModel

    for old, new in MOVED_CLASSES.items():
        if qualified.startswith(old):
            qualified = new + qualified[len(old):]

    if not qualified.startswith(TRUSTED_CLASS_PREFIXES):
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME, f"'model_class' is {qualified!r}; only transformers and "
                                                             "bertlite model classes are loaded")
    module_name, _, class_name = qualified.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME,
                           f"'model_class' {qualified!r} is not available in this environment ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)):
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME, f"'model_class' {qualified!r} is not a Transformers model class")
    return cls


def _transformers_config(folder: str):
    from transformers import AutoConfig

    from .. import modeling  # noqa: F401  (importing registers the pruned `bertlite` model type with AutoConfig)

    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise folder_error(folder, "config.json", f"cannot be read ({str(err).splitlines()[0]})") from err


def _skeleton(folder: str, qualified_class: str):
    """The architecture, ordinarily initialised: every saved tensor is overwritten from the file, and building it
    the ordinary way keeps the constants models create for themselves (position ids, ...) right. Skipping the
    initialisation would save a second on bert-base at the risk of garbage in those non-saved buffers."""
    cls = _model_class(folder, qualified_class)
    config = _transformers_config(folder)
    try:
        return cls._from_config(config).eval()
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, RuntimeError) as err:
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME,
                           f"'model_class' {qualified_class!r} cannot be built from config.json ({err})") from err


def _read_weights(folder: str) -> tuple[dict, dict]:
    """(tensors, header metadata); a truncated or corrupt file is an Int8FolderError here, where it is read."""
    from safetensors import SafetensorError, safe_open

    path = os.path.join(folder, WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise folder_error(folder, WEIGHTS_NAME, "is missing")
    try:
        with safe_open(path, framework="pt") as f:
            return {key: f.get_tensor(key) for key in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise folder_error(folder, WEIGHTS_NAME, f"is truncated or corrupt ({str(err).splitlines()[0]})") from err


def _saved_backend(folder: str, meta: dict):
    name = meta.get("backend")
    if name not in BACKENDS:
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME, f"'backend' is {name!r}; known backends: {', '.join(BACKENDS)}")
    return get_backend(name, check=False)


def _saved_settings(folder: str, meta: dict) -> tuple[QuantizationConfig, Int8Settings]:
    try:
        settings = QuantizationConfig.from_dict(meta["settings"])
    except (BertliteError, TypeError, ValueError) as err:
        raise folder_error(folder, QUANTIZATION_CONFIG_NAME, f"'settings' are not valid ({err})") from err
    return settings, Int8Settings(**{key: meta["resolved"][key] for key in ("per_channel", "reduce_range", "activations")})


def _weight_from(tensors: dict, name: str, per_channel: bool) -> QuantizedWeight:
    int8, scale, zero_point = (tensors.pop(f"{name}.{s}") for s in INT8_SUFFIXES)  # present: TensorChecker saw them
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
    Every problem with the folder (missing, extra or malformed tensors, settings edited after it was written, a
    weights file whose sha256 differs from the recorded one, a truncated file) is one `Int8FolderError` naming the
    entry; see validation.py.
    """
    folder = check_path(folder, "the int8 folder")
    meta = read_quantization_meta(folder)
    tensors = None
    if meta.get("weights_file") == WEIGHTS_NAME:
        tensors, header = _read_weights(folder)
        # First, so that an edited setting is named as such rather than as the inconsistency it causes.
        check_bound_settings(folder, QUANTIZATION_CONFIG_NAME, meta, _architecture(folder), WEIGHTS_NAME, header)
    saved = _saved_backend(folder, meta)
    check_meta(folder, QUANTIZATION_CONFIG_NAME, meta, ONNX_FILE if saved.is_graph_backend else WEIGHTS_NAME,
               saved.is_graph_backend)
    check_resolved(folder, QUANTIZATION_CONFIG_NAME, meta, saved)
    backend_name = backend or saved.name
    if saved.is_graph_backend or backend_name == "onnxruntime":
        if backend_name != saved.name:
            raise BertliteError(f"{folder!r} was saved with the {saved.name!r} backend; an ONNX Runtime folder and a "
                                "PyTorch int8 folder cannot be converted into each other. Quantize again with the backend you need.")
        return _load_onnx(folder, meta, threads)
    model = _load_modules(folder, meta, tensors, saved, get_backend(backend_name))
    return _compiled(model, compile)


def _load_onnx(folder: str, meta: dict, threads: int | None):
    get_backend("onnxruntime")
    check_settings_digest(folder, QUANTIZATION_CONFIG_NAME, meta, _architecture(folder))
    path = os.path.join(folder, ONNX_FILE)
    if not os.path.isfile(path):
        raise folder_error(folder, ONNX_FILE, "is missing")
    check_checksum(folder, QUANTIZATION_CONFIG_NAME, meta, path)
    settings, resolved = _saved_settings(folder, meta)
    config = _transformers_config(folder)
    try:
        model = OnnxInt8Model.load(folder, config, meta["output_name"], meta["onnx_fused"], threads)
    except BertliteError:
        raise
    except Exception as err:  # noqa: BLE001 - ONNX Runtime's errors derive from Exception only
        raise folder_error(folder, ONNX_FILE, f"cannot be loaded by ONNX Runtime ({str(err).splitlines()[0]})") from err
    setattr(model, RECORD_ATTR, QuantizationRecord(settings, resolved, meta["linear_modules"], meta["embedding_modules"],
                                                   meta["fp32_linear_modules"]))
    return model


def _load_modules(folder: str, meta: dict, tensors: dict, saved: Int8Backend, impl: Int8Backend):
    """Validate the tensors against the architecture, then the checksum, then build the int8 modules from them."""
    settings, resolved = _saved_settings(folder, meta)
    model = _skeleton(folder, meta["model_class"])
    TensorChecker(folder, WEIGHTS_NAME, tensors, model, meta, saved.weight_qrange(resolved), INT8_RANGE).run()
    # After the checks above, which name a bad entry; this one catches edits that leave a valid-looking file.
    check_checksum(folder, QUANTIZATION_CONFIG_NAME, meta, os.path.join(folder, WEIGHTS_NAME))
    if impl.name == saved.name:
        if settings.reduce_range is None and impl.reduce_range_at_runtime(resolved):
            resolved = impl.resolve(settings)  # "auto" on a run-time choice: decide for this machine
    else:  # the other module backend reads the same integers with its own defaults
        settings = dataclasses.replace(settings, backend=impl.name, activations=None)
        resolved = impl.resolve(settings)
    for name in meta["linear_modules"]:
        weight = _weight_from(tensors, name, resolved.per_channel)
        set_submodule(model, name, impl.make_linear(weight, tensors.pop(f"{name}.bias", None), resolved))
    for name in meta["embedding_modules"]:
        padding_idx = getattr(model.get_submodule(name), "padding_idx", None)
        set_submodule(model, name, Int8Embedding(_weight_from(tensors, name, True), padding_idx))
    _fit_fp32_linears(model, tensors)
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    quantized = set(meta["linear_modules"]) | set(meta["embedding_modules"])
    missing = [k for k in missing if k.rpartition(".")[0] not in quantized]
    if missing or unexpected:  # unreachable after TensorChecker; kept as the last guard before running
        raise folder_error(folder, WEIGHTS_NAME, f"does not match its architecture (missing {missing[:5]}, "
                                                 f"unexpected {unexpected[:5]})")
    still_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if still_meta:
        raise folder_error(folder, WEIGHTS_NAME, f"provides no tensors for {still_meta[:5]}")
    model.eval()
    setattr(model, RECORD_ATTR, QuantizationRecord(settings, resolved, meta["linear_modules"], meta["embedding_modules"],
                                                   meta["fp32_linear_modules"]))
    return model


def _compiled(model, compile: bool | str):
    if compile == "pt2e":
        from .pt2e import compile_pt2e

        return compile_pt2e(model)
    if compile in (True, "inductor"):
        from .backends.torchao_backend import compile_for_inference

        return compile_for_inference(model)
    if compile:
        raise BertliteError(f"compile={compile!r}: use False, True / 'inductor' (torch.compile) or 'pt2e'.")
    return model
