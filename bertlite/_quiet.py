"""Silence two known, harmless log lines that optional dependencies print on every model load.

- torchao (int8 backend extra) tries to load its CUDA-only kernels (`_C_mxfp8`, `_C_cutlass_90a`) and logs
  "Failed to load ...so" on CPU-only machines;
- torchao's import registers Enum types with torch's pytree, which logs a deprecation warning per Enum.
Only records matching exactly these messages are dropped; every other warning of those loggers still shows.
"""

import logging
import re

_PATTERNS = {
    "torchao": re.compile(r"^Failed to load .*\.so"),
    "torch.utils._pytree": re.compile(r"is an Enum subclass and is now natively supported by torch\.compile"),
}


class _DropKnown(logging.Filter):
    def __init__(self, pattern):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def install() -> None:
    for name, pattern in _PATTERNS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnown) for f in logger.filters):
            logger.addFilter(_DropKnown(pattern))
