"""Int8 backends by name. Each one is a small class implementing `Int8Backend` (see base.py)."""

from __future__ import annotations

from ...errors import BertliteError
from .base import Int8Backend
from .onnxruntime_backend import OnnxRuntimeBackend
from .torch_backend import TorchBackend
from .torchao_backend import TorchaoBackend

BACKENDS: dict[str, type[Int8Backend]] = {b.name: b for b in (TorchBackend, TorchaoBackend, OnnxRuntimeBackend)}
DEFAULT_BACKEND = "torch"


def get_backend(name: str, check: bool = True) -> Int8Backend:
    if name not in BACKENDS:
        raise BertliteError(f"Unknown quantization backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    backend = BACKENDS[name]()
    if check:
        backend.check_available()
    return backend


def available_backends() -> list[str]:
    names = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except BertliteError:
            continue
        names.append(name)
    return names


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Int8Backend", "available_backends", "get_backend"]
