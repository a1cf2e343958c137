"""bertlite: make BERT models small and fast (distillation, pruning, int8 quantization, Hub publishing)."""

__version__ = "0.1.0"

from .errors import BertliteError  # noqa: E402
from .hub import load_compressed, push_compressed  # noqa: E402  (cheap: heavy imports happen on first call)

__all__ = ["BertliteError", "__version__", "load_compressed", "push_compressed"]
