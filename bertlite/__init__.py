"""bertlite: make BERT models small and fast (distillation, pruning, int8 quantization, Hub publishing)."""

__version__ = "0.1.0"

from .errors import BertliteError  # noqa: E402

__all__ = ["BertliteError", "__version__"]

from . import structured as _structured  # noqa: E402,F401  registers model_type "bertlite" with transformers' Auto classes
