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


# Architecture class-name suffix -> Auto class. Longest suffixes first.
AUTO_CLASSES = (
    ("ForSequenceClassification", "AutoModelForSequenceClassification"),
    ("ForTokenClassification", "AutoModelForTokenClassification"),
    ("ForQuestionAnswering", "AutoModelForQuestionAnswering"),
    ("ForMultipleChoice", "AutoModelForMultipleChoice"),
    ("ForMaskedLM", "AutoModelForMaskedLM"),
    ("ForPreTraining", "AutoModelForPreTraining"),
    ("ForNextSentencePrediction", "AutoModelForNextSentencePrediction"),
    ("Model", "AutoModel"),
)


def auto_class_name(architecture: str | None) -> str:
    for suffix, auto in AUTO_CLASSES:
        if architecture and architecture.endswith(suffix):
            return auto
    return "AutoModel"


def load_with_transformers(folder: ModelFolder, *, trust_remote_code: bool = False, **model_kwargs):
    """Rebuild with the Auto class matching config.json's architecture; refuse silent weight mismatches."""
    import transformers

    auto_name = auto_class_name(folder.architecture)
    auto_cls = getattr(transformers, auto_name)
    try:
        model, info = auto_cls.from_pretrained(folder.path, trust_remote_code=trust_remote_code, use_safetensors=True,
                                               output_loading_info=True, **model_kwargs)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise BertliteError(
                f"This model ({folder.model_type!r}) is defined by code stored next to its weights. Upgrade bertlite "
                "if it should know this model type, or pass trust_remote_code=True after reading that code."
            ) from err
        raise BertliteError(f"Could not rebuild the model in {folder.path!r} with {auto_name}: {err}") from err
    except (OSError, RuntimeError) as err:
        raise BertliteError(f"Could not load the weights in {folder.path!r} with {auto_name}: {err}") from err
    problems = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)}
    if problems:
        # A mismatch means the weights were saved by modules this class does not have (e.g. int8 ones):
        # loading them anyway would silently give random layers.
        details = "; ".join(f"{k}: {', '.join(map(str, sorted(v, key=str)[:5]))}" for k, v in problems.items())
        raise BertliteError(
            f"The weights in {folder.path!r} do not fit {type(model).__name__} ({details}). The folder needs a loader "
            "this bertlite does not have (was it made by a newer bertlite?)."
        )
    return model


def _register_builtin_formats() -> None:
    register_format("transformers", detect=lambda folder: folder.has("config.json"), load=load_with_transformers,
                    priority=0)


_register_builtin_formats()
