"""bertlite: make BERT models small and fast (distillation, pruning, int8 quantization, Hub publishing).

`import bertlite` is cheap and has no side effects: torch and transformers load on first use of the names below, and
the `bertlite` model type of pruned models is registered with transformers' Auto classes by bertlite's loaders (or
`import bertlite.modeling`), not here.
"""

from .errors import BertliteError
from .record import VERSION as __version__

_LAZY = {
    "DistillationConfig": ("bertlite.distillation.config", "DistillationConfig"),
    "DistillationTrainer": ("bertlite.distillation.trainer", "DistillationTrainer"),
    "build_student": ("bertlite.distillation.student", "build_student"),
    "finetuned_teacher": ("bertlite.distillation.teacher", "finetuned_teacher"),
    "CompressionConfig": ("bertlite.record", "CompressionConfig"),
    "prune_weights": ("bertlite.pruning.unstructured", "prune_weights"),
    "prune_structured": ("bertlite.pruning.structured.api", "prune"),
    "quantize_model": ("bertlite.quantization", "quantize_model"),
    "load_quantized": ("bertlite.quantization", "load_quantized"),
    "load_compressed": ("bertlite.hub", "load_compressed"),
    "push_compressed": ("bertlite.hub", "push_compressed"),
    "load_model": ("bertlite.loading", "load_model"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        from ._quiet import install

        install()  # two known, harmless log lines of optional dependencies (torchao via transformers): see _quiet
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bertlite' has no attribute {name!r}")


__all__ = ["BertliteError", "__version__", *_LAZY]
