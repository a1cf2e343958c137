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
from ..weights import INT7_RANGE, INT8_RANGE, QuantizedWeight
from .base import Int8Backend, Int8Settings

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


ACTIVATION_MODES = ("per_token", "per_tensor")


def quantize_activations_per_token(x: torch.Tensor, reduce_range: bool):
    """Asymmetric uint8 per row (token), returned shifted into int8 for the s8 x s8 kernel.

    Returns (int8 values, scale (rows, 1), shifted zero point (rows,)) with x ≈ scale * (int8 - zero point).
    Asymmetric because half the layers read GELU outputs (almost all >= 0) where a symmetric range wastes a bit.
    """
    qmax = 127 if reduce_range else 255
    offset = (qmax + 1) // 2  # uint8 -> int8 shift (128, or 64 for 7-bit values)
    low, high = torch.aminmax(x, dim=-1, keepdim=True)
    low, high = low.clamp(max=0.0), high.clamp(min=0.0)
    scale = ((high - low) / qmax).clamp_min(torch.finfo(torch.float32).eps)
    zero_point = torch.round(-low / scale)
    values = torch.round(x / scale).add_(zero_point - offset).clamp_(-offset, qmax - offset).to(torch.int8)
    return values, scale, (zero_point - offset).squeeze(-1)


class DynamicInt8Linear(torch.nn.Module):
    """y = x W^T + b with W in int8 (per row or per matrix) and x quantized at every call.

    activation="per_tensor": one scale for the whole batch, fbgemm's `quantized::linear_dynamic`: the kernel of
        `torch.ao.quantization.quantize_dynamic`, and the fastest eager path.
    activation="per_token": one uint8 scale and zero point per token, int8 GEMM through `torch._int_mm` (oneDNN).
        BERT models put outliers on a few tokens ([CLS], [SEP]); per-token scales keep them from coarsening the
        other tokens' resolution (5x smaller logit error on MiniLM), but the separate quantization pass makes it
        slower in eager mode (docs/quantization.md has the numbers).
    reduce_range: 7-bit activations (per_tensor: fbgemm's u8 x s8 pair sums then fit 16-bit accumulators on AVX2;
        per_token: the weights are 7-bit too, as torchao does, since oneDNN shifts s8 activations to u8).
    """

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None, reduce_range: bool,
                 activation: str = "per_tensor"):
        super().__init__()
        if activation not in ACTIVATION_MODES:
            raise ValueError(f"activation must be one of {ACTIVATION_MODES}, got {activation!r}")
        self.out_features, self.in_features = weight.shape
        self.per_channel = weight.per_channel
        self.activation = activation
        self.reduce_range = bool(reduce_range)
        self.register_buffer("weight_int8", weight.int8.contiguous())
        self.register_buffer("weight_scale", weight.scale.to(torch.float32).contiguous())
        self.register_buffer("weight_zero_point", weight.zero_point.to(torch.int32).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone())
        self._prepare_kernel()

    @property
    def quantized_weight(self) -> QuantizedWeight:
        return QuantizedWeight(self.weight_int8, self.weight_scale, self.weight_zero_point, self.per_channel)

    def _prepare_kernel(self):
        # Derived, never saved: rebuilt from the int8 buffers, so it always matches them.
        if self.activation == "per_tensor":
            self._packed = _pack(self.quantized_weight, self.bias)
        else:
            self._weight_t = self.weight_int8.t()  # _int_mm wants (K, N); a transposed view is what it is fastest with
            self._weight_sums = self.weight_int8.sum(dim=1, dtype=torch.int32).to(torch.float32)  # zero-point term

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._prepare_kernel()  # the kernel form must follow the loaded integers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        if self.activation == "per_tensor":
            return torch.ops.quantized.linear_dynamic(x, self._packed, self.reduce_range).to(dtype)
        rows = x.reshape(-1, self.in_features)
        values, scale, zero_point = quantize_activations_per_token(rows, self.reduce_range)
        y = torch._int_mm(values, self._weight_t).to(torch.float32)
        y.addr_(zero_point, self._weight_sums, alpha=-1)  # x ≈ s (q - z): remove z * sum_k W[n, k]
        y.mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*x.shape[:-1], self.out_features).to(dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, per_channel={self.per_channel}, "
                f"activation={self.activation}, reduce_range={self.reduce_range}")


class TorchBackend(Int8Backend):
    name = "torch"
    summary = "PyTorch int8 CPU kernels, eager (no compiler needed)"
    activation_modes = ("per_tensor", "per_token")
    install_hint = "a PyTorch build with quantized CPU kernels (torch.ops.quantized.linear_dynamic)"

    def resolve(self, config) -> Int8Settings:
        settings = super().resolve(config)
        if settings.activations == "per_token" and not hasattr(torch, "_int_mm"):
            raise BertliteError(f"Per-token activations need torch._int_mm, missing in PyTorch {torch.__version__}; "
                                "use --activations per_tensor or --backend torchao.")
        if settings.activations == "per_tensor" and not torch_int8_kernels_available():
            raise BertliteError(
                f"This PyTorch {torch.__version__} has no quantized CPU kernels (torch.ops.quantized.linear_dynamic, "
                "deprecated upstream): use --activations per_token, --backend torchao or --backend onnxruntime.")
        return settings

    def weight_qrange(self, settings: Int8Settings) -> tuple[int, int]:
        return INT7_RANGE if settings.reduce_range and settings.activations == "per_token" else INT8_RANGE

    def reduce_range_at_runtime(self, settings: Int8Settings) -> bool:
        return settings.activations == "per_tensor"

    def make_linear(self, weight, bias, settings: Int8Settings):
        return DynamicInt8Linear(weight, bias, settings.reduce_range, settings.activations)

    def read_linear(self, module):
        if isinstance(module, DynamicInt8Linear):
            return module.quantized_weight, module.bias
        return None
