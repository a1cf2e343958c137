"""Which code rebuilds a saved model: a small registry that `load_compressed` dispatches on.

A format says when it applies (`detect`, looking at a `ModelFolder`: compression steps, config.json model_type,
files such as a quantization config) and how to load it. The highest-priority format whose `detect` is true
wins; the built-in "transformers" format (priority 0) takes any folder with a config.json.

Helpers add their format with one `register_format` call in `_register_builtin_formats` below, giving the loader
as a "module:function" string so that nothing heavy is imported until such a model is actually loaded:

    register_format("int8", detect=lambda f: f.has("quantization_config.json"),
                    load="bertlite.quantization.hub:load_quantized", priority=20,
                    files=("quantization_config.json",), plain_transformers=False)

A loader is called as `load(folder: ModelFolder, *, trust_remote_code: bool, **model_kwargs)` and returns the model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..errors import BertliteError
from .folder import ModelFolder


@dataclass(frozen=True)
class ModelFormat:
    name: str
    detect: Callable[[ModelFolder], bool]
    load: Callable | str  # a callable or "module:function", imported on first use
    priority: int = 0
    files: tuple[str, ...] = ()  # extra file patterns this format needs on the Hub (beyond folder.UPLOAD_PATTERNS)
    plain_transformers: bool = True  # can `AutoModel...from_pretrained` rebuild it without bertlite?

    def loader(self) -> Callable:
        if callable(self.load):
            return self.load
        module_name, _, attr = self.load.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise BertliteError(
                f"This model needs bertlite's {self.name!r} loader ({self.load}), which this installation lacks: "
                f"upgrade bertlite (pip install -U bertlite). ({err})"
            ) from err


_FORMATS: dict[str, ModelFormat] = {}


def register_format(name: str, *, detect: Callable[[ModelFolder], bool], load: Callable | str, priority: int = 0,
                    files: tuple[str, ...] = (), plain_transformers: bool = True) -> ModelFormat:
    """Add (or replace, by name) a way to rebuild models. See the module docstring."""
    fmt = ModelFormat(name, detect, load, priority, tuple(files), plain_transformers)
    _FORMATS[name] = fmt
    return fmt


def registered_formats() -> list[ModelFormat]:
    return sorted(_FORMATS.values(), key=lambda f: -f.priority)


def select_format(folder: ModelFolder) -> ModelFormat:
    for fmt in registered_formats():
        if fmt.detect(folder):
            return fmt
    raise BertliteError(
        f"bertlite does not know how to load {folder.path!r} (no config.json, and no registered format matches "
        f"its files: {', '.join(folder.files) or 'none'})."
    )


def extra_file_patterns() -> tuple[str, ...]:
    return tuple(p for fmt in registered_formats() for p in fmt.files)


def load_with_transformers(folder: ModelFolder, *, trust_remote_code: bool = False, **model_kwargs):
    """Rebuild with the Auto class matching config.json's architecture; refuse silent weight mismatches."""
    from ..loading import load_model

    return load_model(folder.path, strict=True, trust_remote_code=trust_remote_code, **model_kwargs)


def _is_bertlite_int8(folder: ModelFolder) -> bool:
    from ..loading import is_int8_folder

    return is_int8_folder(folder.path)


def _register_builtin_formats() -> None:
    register_format("transformers", detect=lambda folder: folder.has("config.json"), load=load_with_transformers,
                    priority=0)
    register_format("int8", detect=_is_bertlite_int8, load="bertlite.quantization.hub:load_quantized", priority=20,
                    files=("quantization_config.json", "*.onnx"), plain_transformers=False)


_register_builtin_formats()
