"""The interface every int8 backend implements, kept small on purpose.

Module backends (torch, torchao) swap each `nn.Linear` for an int8 module built from a `QuantizedWeight`, and can
hand that weight back for saving. A graph backend (onnxruntime) turns the whole model into one runtime artifact.
"""

from __future__ import annotations

import torch

from ..weights import INT8_RANGE, INT7_RANGE, QuantizedWeight


class Int8Backend:
    name: str = ""
    summary: str = ""
    is_graph_backend: bool = False
    # What `reduce_range=True` shrinks differs between runtimes; each backend documents it here.
    default_reduce_range: bool = False
    install_hint: str = ""

    def check_available(self) -> None:
        """Raise BertliteError saying what to install when this backend cannot run here."""

    def weight_qrange(self, reduce_range: bool) -> tuple[int, int]:
        return INT8_RANGE

    # Module backends -------------------------------------------------------------------------------------------
    def make_linear(self, weight: QuantizedWeight, bias: torch.Tensor | None, reduce_range: bool) -> torch.nn.Module:
        raise NotImplementedError

    def read_linear(self, module: torch.nn.Module) -> tuple[QuantizedWeight, torch.Tensor | None] | None:
        """The int8 weight and bias of one of this backend's modules; None for any other module."""
        raise NotImplementedError


__all__ = ["Int8Backend", "INT8_RANGE", "INT7_RANGE"]
