"""The interface every int8 backend implements, kept small on purpose.

Module backends (torch, torchao) swap each `nn.Linear` for an int8 module built from a `QuantizedWeight`, and can
hand that weight back for saving. A graph backend (onnxruntime) turns the whole model into one runtime artifact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import BertliteError
from ..cpu import auto_reduce_range
from ..weights import INT8_RANGE, QuantizedWeight


@dataclass(frozen=True)
class Int8Settings:
    """A backend's resolved choices (no "auto" left)."""

    per_channel: bool
    reduce_range: bool
    activations: str  # "per_tensor" or "per_token"


class Int8Backend:
    name: str = ""
    summary: str = ""
    is_graph_backend: bool = False
    activation_modes: tuple[str, ...] = ("per_tensor",)  # the first is the default
    symmetric_activations: bool = False  # int8 around zero (torchao) rather than uint8 with a zero point
    install_hint: str = ""

    def check_available(self) -> None:
        """Raise BertliteError saying what to install when this backend cannot run here."""

    def resolve(self, config) -> Int8Settings:
        """Settings from a QuantizationConfig: reduce_range None = auto (7-bit only on x86 CPUs without VNNI,
        where 8-bit products can overflow 16-bit sums); activations None = this backend's default."""
        activations = config.activations or self.activation_modes[0]
        if activations not in self.activation_modes:
            raise BertliteError(f"The {self.name!r} backend quantizes activations {' or '.join(self.activation_modes)}, "
                                f"not {activations!r}.")
        reduce_range = auto_reduce_range() if config.reduce_range is None else bool(config.reduce_range)
        return Int8Settings(bool(config.per_channel), reduce_range, activations)

    def weight_qrange(self, settings: Int8Settings) -> tuple[int, int]:
        return INT8_RANGE

    def reduce_range_at_runtime(self, settings: Int8Settings) -> bool:
        """True when reduce_range only changes how activations are quantized at run time (not the stored
        weights): a folder saved with reduce_range "auto" then re-decides it on the machine that loads it."""
        return False

    # Module backends -------------------------------------------------------------------------------------------
    def make_linear(self, weight: QuantizedWeight, bias: torch.Tensor | None, settings: Int8Settings) -> torch.nn.Module:
        raise NotImplementedError

    def read_linear(self, module: torch.nn.Module) -> tuple[QuantizedWeight, torch.Tensor | None] | None:
        """The int8 weight and bias of one of this backend's modules; None for any other module."""
        raise NotImplementedError
