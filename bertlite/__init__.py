"""bertlite: make BERT models small and fast (distillation, pruning, int8 quantization, Hub publishing).

Heavy modules (torch, transformers) load on first use of the names below, so `import bertlite` stays cheap.
"""

__version__ = "0.1.0"

from . import _quiet  # noqa: E402
from .errors import BertliteError  # noqa: E402

_quiet.install()
from .hub import load_compressed, push_compressed  # noqa: E402  (cheap: heavy imports happen on first call)

_LAZY = {
    "DistillationConfig": ("bertlite.config", "DistillationConfig"),
    "DistillationTrainer": ("bertlite.trainer", "DistillationTrainer"),
    "build_student": ("bertlite.student", "build_student"),
    "CompressionConfig": ("bertlite.compression_config", "CompressionConfig"),
    "finetuned_teacher": ("bertlite.teacher", "finetuned_teacher"),
    "prune_weights": ("bertlite.sparse", "prune_weights"),
    "prune_structured": ("bertlite.structured.api", "prune"),
    "quantize_model": ("bertlite.quantization", "quantize_model"),
    "load_quantized": ("bertlite.quantization", "load_quantized"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bertlite' has no attribute {name!r}")


__all__ = ["BertliteError", "__version__", "load_compressed", "push_compressed", *_LAZY]

from .structured import autoregister as _autoregister  # noqa: E402,F401  model_type "bertlite" for the Auto classes, torch-free until transformers' Auto classes load
