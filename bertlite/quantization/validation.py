"""Checks an int8 folder passes before any of it is trusted.

An int8 folder is a set of integers plus the settings that say how to read them. Integers that are edited, or
settings that no longer match them, still load and run: they just give other logits. So nothing in the folder is
taken on faith:
- `quantization_config.json` records the sha256 of the weights file: any change to that file after it was
  written is found;
- the weights file records the settings it was written with, config.json's architecture included (safetensors
  metadata; for ONNX, a digest in the JSON), so an edit of `quantization_config.json` or `config.json` is found
  too, and named;
- every tensor is checked against the model's architecture and the int8 scheme (keys, dtypes, shapes, finite
  positive scales, zero zero-points, values inside the weight range), so a folder without a checksum (older
  bertlite) or a corrupt one fails with a message naming the entry instead of a traceback from deep inside torch.
Every problem is one `Int8FolderError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import torch

from ..errors import BertliteError

CHECKSUM_KEY = "weights_sha256"  # in quantization_config.json: sha256 of the weights file
SETTINGS_METADATA_KEY = "bertlite_settings"  # in the safetensors header: the settings the integers were written with
SETTINGS_DIGEST_KEY = "settings_sha256"  # in quantization_config.json, for ONNX files (no header of ours to write)
# The fields that decide how the stored integers are read back (and so what the model computes).
PROTECTED = ("format_version", "backend", "settings", "resolved", "linear_modules", "embedding_modules",
             "fp32_linear_modules", "weights_file", "model_class", "output_name", "onnx_fused")
_ADVICE = "The folder is incomplete, corrupt or was edited: quantize the fp32 model again (bertlite quantize)."
_warned_unchecked: set[str] = set()


class Int8FolderError(BertliteError):
    """An int8 folder that is incomplete, corrupt, or was changed after bertlite wrote it."""


def folder_error(folder: str, file: str, problem: str) -> Int8FolderError:
    return Int8FolderError(f"Int8 folder {folder!r}: {file}: {problem}. {_ADVICE}")


# Settings ---------------------------------------------------------------------------------------------------------
ARCHITECTURE_KEY = "config"  # the recorded settings' entry for config.json
# config.json entries that change nothing the model computes: labels may be renamed (their number may not change).
_COSMETIC_CONFIG_KEYS = ("id2label", "label2id", "transformers_version", "_name_or_path")


def architecture_of(config: dict) -> dict:
    """The config.json entries that shape what the model computes."""
    architecture = {key: value for key, value in config.items() if key not in _COSMETIC_CONFIG_KEYS}
    labels = config.get("id2label")
    # config.json leaves out id2label when it holds Transformers' default: two labels.
    architecture["num_labels"] = len(labels) if isinstance(labels, dict) else config.get("num_labels", 2)
    return architecture


def protected_settings(meta: dict, architecture: dict) -> dict:
    return {**{key: meta[key] for key in PROTECTED if key in meta}, ARCHITECTURE_KEY: architecture}


def canonical_settings(meta: dict, architecture: dict) -> str:
    return json.dumps(protected_settings(meta, architecture), sort_keys=True, separators=(",", ":"))


def settings_digest(meta: dict, architecture: dict) -> str:
    return hashlib.sha256(canonical_settings(meta, architecture).encode()).hexdigest()


def _differences(written, now, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ (`resolved.activations`), one level into dicts."""
    if isinstance(written, dict) and isinstance(now, dict):
        return [f"{prefix}{key}" for key in sorted(set(written) | set(now)) if written.get(key) != now.get(key)]
    return [prefix.rstrip(".")] if written != now else []


def check_bound_settings(folder: str, config_file: str, meta: dict, architecture: dict, weights_file: str,
                         header: dict) -> None:
    """quantization_config.json and config.json must hold the settings the weights file was written with (older
    files recorded none)."""
    if SETTINGS_METADATA_KEY not in header:
        return
    try:
        written = json.loads(header[SETTINGS_METADATA_KEY])
    except ValueError as err:
        raise folder_error(folder, weights_file, f"its recorded settings are not valid JSON ({err})") from err
    current = protected_settings(meta, architecture)
    changed = [name for key in sorted(set(written) | set(current))
               for name in _differences(written.get(key), current.get(key), f"{key}.")]
    if changed:
        key, _, sub = changed[0].partition(".")
        was, now = written.get(key), current.get(key)
        if sub:
            was, now = (was or {}).get(sub), (now or {}).get(sub)
        name, file = (sub, "config.json") if key == ARCHITECTURE_KEY else (changed[0], config_file)
        raise folder_error(folder, file, f"{_change(name, was, now, weights_file)}: the settings were changed after "
                                         "the folder was written")


def _change(name: str, was, now, weights_file: str) -> str:
    """What became of a setting, short enough for one line (module lists hold hundreds of names)."""
    if now is None:
        return f"{name!r} is missing, though {weights_file} was written with it"
    if isinstance(was, list) and isinstance(now, list):
        removed, added = [n for n in was if n not in now], [n for n in now if n not in was]
        parts = ([f"no longer lists {removed[0]!r}" + (f" (and {len(removed) - 1} more)" if len(removed) > 1 else "")]
                 if removed else []) + ([f"lists {added[0]!r}"] if added else [])
        return f"{name!r} {' and '.join(parts) or 'is in another order'}, unlike the list {weights_file} was written with"
    return f"{name!r} is {now!r} but {weights_file} was written with {was!r}"


def check_settings_digest(folder: str, config_file: str, meta: dict, architecture: dict) -> None:
    recorded = meta.get(SETTINGS_DIGEST_KEY)
    if recorded is not None and recorded != settings_digest(meta, architecture):
        raise folder_error(folder, config_file, "its settings (or config.json) were changed after the folder was written "
                                                f"({SETTINGS_DIGEST_KEY} no longer matches them)")


# Checksum ---------------------------------------------------------------------------------------------------------
def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_checksum(folder: str, config_file: str, meta: dict, path: str) -> None:
    """A folder from before checksums were recorded loads (its tensors are validated) with one warning."""
    recorded = meta.get(CHECKSUM_KEY)
    weights_file = os.path.basename(path)
    if recorded is None:
        key = os.path.realpath(folder)
        if key not in _warned_unchecked:
            _warned_unchecked.add(key)
            warnings.warn(f"Int8 folder {folder!r} has no {CHECKSUM_KEY} (written by an older bertlite): its tensors "
                          "were validated, but an edit of its values cannot be detected. Save it again with "
                          "save_quantized to add a checksum.", stacklevel=3)
        return
    try:
        actual = sha256_file(path)
    except OSError as err:
        raise folder_error(folder, weights_file, f"cannot be read ({err.strerror or err})") from err
    if actual != recorded:
        raise folder_error(folder, weights_file, f"its sha256 ({actual[:12]}...) differs from the one {config_file} "
                                                 f"records ({str(recorded)[:12]}...): the folder was changed after it was written")


# quantization_config.json --------------------------------------------------------------------------------------
def check_meta(folder: str, config_file: str, meta: dict, expected_weights_file: str, is_graph: bool) -> None:
    """Every key a loader reads is there, with the type it reads it as."""
    def fail(problem):
        raise folder_error(folder, config_file, problem)

    if meta.get("weights_file") != expected_weights_file:  # before the keys, which depend on the backend
        fail(f"'backend' {meta['backend']!r} keeps its weights in {expected_weights_file!r}, but 'weights_file' is "
             f"{meta.get('weights_file')!r}")
    required = {"backend": str, "settings": dict, "resolved": dict, "linear_modules": list,
                "embedding_modules": list, "fp32_linear_modules": list, "weights_file": str}
    required.update({"output_name": str, "onnx_fused": bool} if is_graph else {"model_class": str})
    for key, kind in required.items():
        if key not in meta:
            fail(f"{key!r} is missing")
        if not isinstance(meta[key], kind):
            fail(f"{key!r} must be a JSON {kind.__name__}, not {type(meta[key]).__name__}")
    for key in ("linear_modules", "embedding_modules", "fp32_linear_modules"):
        if not all(isinstance(name, str) for name in meta[key]):
            fail(f"{key!r} must list module names (strings)")
    if meta["settings"].get("backend") != meta["backend"]:
        fail(f"'settings.backend' is {meta['settings'].get('backend')!r} but 'backend' is {meta['backend']!r}")
    for key, kind in (("per_channel", bool), ("reduce_range", bool), ("activations", str)):
        if not isinstance(meta["resolved"].get(key), kind):
            fail(f"'resolved.{key}' must be a JSON {kind.__name__}, not {meta['resolved'].get(key)!r}")
    for key in (CHECKSUM_KEY, SETTINGS_DIGEST_KEY):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) and len(value) == 64):
            fail(f"{key!r} must be a sha256 hex digest (64 characters), not {value!r}")


def check_resolved(folder: str, config_file: str, meta: dict, backend) -> None:
    activations = meta["resolved"]["activations"]
    if activations not in backend.activation_modes:
        raise folder_error(folder, config_file, f"'resolved.activations' is {activations!r}; the {backend.name!r} backend "
                                                f"quantizes activations {' or '.join(backend.activation_modes)}")


# Tensors ------------------------------------------------------------------------------------------------------------
def _describe(shape) -> str:
    return str(tuple(shape))


def _fits(shape, expected, shrinkable: bool) -> bool:
    """Exactly the architecture's shape; Linear layers may be smaller (structured pruning removes rows/columns
    that a plain config does not record) but never larger."""
    if len(shape) != len(expected):
        return False
    return all(a <= b if shrinkable else a == b for a, b in zip(shape, expected))


class TensorChecker:
    """Checks the tensors of a weights file against the model skeleton they are to be loaded into."""

    def __init__(self, folder: str, weights_file: str, tensors: dict, skeleton: torch.nn.Module, meta: dict,
                 linear_qrange: tuple[int, int], embedding_qrange: tuple[int, int]):
        self.folder, self.file, self.tensors, self.meta = folder, weights_file, tensors, meta
        self.modules = dict(skeleton.named_modules())
        self.state = skeleton.state_dict()
        self.qranges = {"linear": linear_qrange, "embedding": embedding_qrange}

    def fail(self, problem: str):
        raise folder_error(self.folder, self.file, problem)

    def run(self) -> None:
        expected = self._expected_keys()
        self._check_keys(expected)
        for key, (kind, reference) in expected.items():
            self._check_tensor(key, kind, reference)
        for name in self.meta["linear_modules"] + self.meta["embedding_modules"]:
            self._check_int8_group(name)

    def _module(self, name: str, kind: type, listed_in: str) -> torch.nn.Module:
        module = self.modules.get(name)
        if not isinstance(module, kind):
            raise folder_error(self.folder, "quantization_config.json",
                               f"{listed_in!r} lists {name!r}, but 'model_class' {self.meta['model_class']} has no "
                               f"{kind.__name__} of that name")
        return module

    def _expected_keys(self) -> dict:
        """key -> (kind, reference tensor or shape)."""
        quantized = set(self.meta["linear_modules"]) | set(self.meta["embedding_modules"])
        expected = {key: ("plain", value) for key, value in self.state.items() if key.rpartition(".")[0] not in quantized}
        for name in self.meta["linear_modules"]:
            linear = self._module(name, torch.nn.Linear, "linear_modules")
            expected.update({f"{name}.weight_int8": ("int8", linear.weight), f"{name}.weight_scale": ("scale", None),
                             f"{name}.weight_zero_point": ("zero_point", None)})
            if linear.bias is not None:
                expected[f"{name}.bias"] = ("bias", None)
        for name in self.meta["embedding_modules"]:
            embedding = self._module(name, torch.nn.Embedding, "embedding_modules")
            expected.update({f"{name}.weight_int8": ("int8_exact", embedding.weight), f"{name}.weight_scale": ("scale", None),
                             f"{name}.weight_zero_point": ("zero_point", None)})
        return expected

    def _check_keys(self, expected: dict) -> None:
        missing = [key for key in expected if key not in self.tensors]
        extra = sorted(key for key in self.tensors if key not in expected)
        if missing:
            self.fail(f"tensor {missing[0]!r} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        if extra:
            self.fail(f"tensor {extra[0]!r} is not part of {self.meta['model_class']}"
                      + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))

    def _check_tensor(self, key: str, kind: str, reference) -> None:
        tensor = self.tensors[key]
        want = {"int8": torch.int8, "int8_exact": torch.int8, "scale": torch.float32, "zero_point": torch.int32,
                "bias": torch.float32}.get(kind, reference.dtype if reference is not None else None)
        # fp32 tensors may be in the precision the model was saved in; integers must be exactly what they were.
        floating_ok = kind == "plain" and want.is_floating_point and tensor.is_floating_point()
        if tensor.dtype != want and not floating_ok:
            self.fail(f"tensor {key!r} is {str(tensor.dtype).replace('torch.', '')}, expected {str(want).replace('torch.', '')}")
        if kind in ("plain", "int8", "int8_exact"):
            owner = self.modules.get(key.rpartition(".")[0])
            shrinkable = kind == "int8" or (kind == "plain" and isinstance(owner, torch.nn.Linear))
            if not _fits(tensor.shape, reference.shape, shrinkable):
                bound = "at most " if shrinkable else ""
                self.fail(f"tensor {key!r} has shape {_describe(tensor.shape)}, expected {bound}{_describe(reference.shape)} "
                          "from config.json")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            self.fail(f"tensor {key!r} holds NaN or infinite values")

    def _check_int8_group(self, name: str) -> None:
        """A quantized layer's int8 matrix, scales, zero points and bias must fit each other and the int8 scheme."""
        int8, scale, zero_point = (self.tensors[f"{name}.{s}"] for s in ("weight_int8", "weight_scale", "weight_zero_point"))
        is_embedding = name in self.meta["embedding_modules"]
        rows = int8.shape[0]
        per_channel = is_embedding or self.meta["resolved"]["per_channel"]
        scale_shape = (rows,) if per_channel else (1,)
        if tuple(scale.shape) != scale_shape:
            self.fail(f"tensor '{name}.weight_scale' has shape {_describe(scale.shape)}, expected {scale_shape} "
                      f"({'one scale per row' if per_channel else 'one scale per matrix'})")
        if zero_point.shape != scale.shape:
            self.fail(f"tensor '{name}.weight_zero_point' has shape {_describe(zero_point.shape)}, expected "
                      f"{_describe(scale.shape)} like its scale")
        if not bool((scale > 0).all()):
            self.fail(f"tensor '{name}.weight_scale' holds a scale <= 0 (minimum {float(scale.min())}); scales must be "
                      "finite and > 0")
        if bool(zero_point.any()):
            self.fail(f"tensor '{name}.weight_zero_point' is not all zero; int8 weights are symmetric (zero point 0)")
        low, high = self.qranges["embedding" if is_embedding else "linear"]
        if int8.numel() and (int(int8.min()) < low or int(int8.max()) > high):
            self.fail(f"tensor '{name}.weight_int8' has values in [{int(int8.min())}, {int(int8.max())}], outside the "
                      f"weight range [{low}, {high}] of its settings")
        bias = self.tensors.get(f"{name}.bias")
        if bias is not None and not is_embedding and tuple(bias.shape) != (rows,):
            self.fail(f"tensor '{name}.bias' has shape {_describe(bias.shape)}, expected ({rows},) like its int8 matrix")
