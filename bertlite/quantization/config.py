"""The user's quantization settings (what to quantize, how), validated once, recorded in the saved folder."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field, fields

from ..errors import BertliteError

# Task heads of the Transformers BERT family: a handful of weights that decide the prediction directly, cheap to
# keep in fp32 (a 384x2 classifier is 0.003% of MiniLM's weights) and the layer where int8 error costs most.
DEFAULT_KEEP_FP32 = ("classifier", "qa_outputs", "cls.*", "score")


@dataclass
class QuantizationConfig:
    backend: str = "torch"
    keep_fp32: list[str] = field(default_factory=lambda: list(DEFAULT_KEEP_FP32))
    per_channel: bool = True  # one scale per output row: same kernels, smaller error than one scale per matrix
    reduce_range: bool | None = None  # None = auto: 7-bit only on x86 CPUs without VNNI (see cpu.py)
    quantize_embeddings: bool = False  # int8 word-embedding matrix (smaller files; embeddings are fp32 by default)
    activations: str | None = None  # "per_tensor" / "per_token"; None = the backend's default (see its class)

    def __post_init__(self):
        from .backends import BACKENDS

        if self.backend not in BACKENDS:
            raise BertliteError(f"Unknown quantization backend {self.backend!r}: choose one of {', '.join(BACKENDS)}.")
        if isinstance(self.keep_fp32, str):
            self.keep_fp32 = [self.keep_fp32]
        self.keep_fp32 = [str(p) for p in (self.keep_fp32 or [])]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "QuantizationConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def matches_any(name: str, patterns) -> bool:
    """A module name matches a pattern when the glob matches it, or when the pattern names one of its parents
    (`bert.encoder.layer.0` keeps everything inside layer 0)."""
    return any(fnmatch.fnmatchcase(name, p) or name.startswith(p.rstrip(".") + ".") for p in patterns)
