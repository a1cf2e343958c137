"""Eager int8 backend on PyTorch's own quantized CPU kernels (fbgemm / oneDNN "x86" engine).

The module below calls `torch.ops.quantized.linear_dynamic` directly instead of going through
`torch.ao.quantization.quantize_dynamic`: the same kernels, but (1) `reduce_range` becomes a real choice (the
`torch.ao` module hard-codes it to True), (2) the int8 weight, scales and zero points stay ordinary buffers, so the
state dict goes to safetensors as is; the packed (opaque, unpicklable-to-safetensors) kernel form is rebuilt from
them, losslessly, at construction and after `load_state_dict`.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch

from ...errors import BertliteError
from ..weights import QuantizedWeight
from .base import Int8Backend

# PyTorch 2.10+ deprecates creating quantized (torch.qint8) tensors; packing needs one, transiently. Only this
# message is silenced, so any other warning still reaches the user.
_QTENSOR_DEPRECATION = r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation"


@contextmanager
def _quiet_qtensor_deprecation():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QTENSOR_DEPRECATION, category=UserWarning)
        yield


def torch_int8_kernels_available() -> bool:
    """Feature check rather than a version check: the quantized ops may leave a future PyTorch release."""
    try:
        ops = torch.ops.quantized
        ops.linear_prepack, ops.linear_dynamic  # noqa: B018 (attribute lookup is the check)
    except (AttributeError, RuntimeError):
        return False
    return any(engine in torch.backends.quantized.supported_engines for engine in ("x86", "fbgemm", "qnnpack"))


def _pack(weight: QuantizedWeight, bias: torch.Tensor | None):
    with _quiet_qtensor_deprecation():
        if weight.per_channel:
            qweight = torch._make_per_channel_quantized_tensor(
                weight.int8, weight.scale.to(torch.float64), weight.zero_point.to(torch.int64), 0)
        else:
            qweight = torch._make_per_tensor_quantized_tensor(weight.int8, float(weight.scale), int(weight.zero_point))
        return torch.ops.quantized.linear_prepack(qweight, bias)


class DynamicInt8Linear(torch.nn.Module):
    """y = x W^T + b with W in int8 and x quantized to uint8 per call (per-tensor, from the batch's min/max)."""

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None, reduce_range: bool):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.per_channel = weight.per_channel
        # reduce_range: 7-bit activations, so that u8*s8 pair sums fit the 16-bit accumulators of AVX2 kernels.
        self.reduce_range = bool(reduce_range)
        self.register_buffer("weight_int8", weight.int8.contiguous())
        self.register_buffer("weight_scale", weight.scale.to(torch.float32).contiguous())
        self.register_buffer("weight_zero_point", weight.zero_point.to(torch.int32).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone())
        self._repack()

    @property
    def quantized_weight(self) -> QuantizedWeight:
        return QuantizedWeight(self.weight_int8, self.weight_scale, self.weight_zero_point, self.per_channel)

    def _repack(self):
        self._packed = _pack(self.quantized_weight, self.bias)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._repack()  # the kernel form must follow the loaded integers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        return torch.ops.quantized.linear_dynamic(x.to(torch.float32), self._packed, self.reduce_range).to(dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"per_channel={self.per_channel}, reduce_range={self.reduce_range}")


class TorchBackend(Int8Backend):
    name = "torch"
    summary = "PyTorch quantized CPU kernels, eager (no compiler needed)"
    # PyTorch's own default: safe on CPUs without VNNI, where 8-bit activations can overflow int16 pair sums.
    default_reduce_range = True
    install_hint = "it needs a PyTorch build with quantized CPU kernels (torch.ops.quantized.linear_dynamic)"

    def check_available(self) -> None:
        if not torch_int8_kernels_available():
            raise BertliteError(
                f"The 'torch' int8 backend is not available: this PyTorch {torch.__version__} has no quantized CPU "
                "kernels (torch.ops.quantized.linear_dynamic). Use --backend torchao or --backend onnxruntime.")

    def make_linear(self, weight, bias, reduce_range):
        return DynamicInt8Linear(weight, bias, reduce_range)

    def read_linear(self, module):
        if isinstance(module, DynamicInt8Linear):
            return module.quantized_weight, module.bias
        return None
