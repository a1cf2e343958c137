"""Symmetric int8 weight quantization: the one place that turns fp32 weights into (int8, scale, zero point).

Every backend, the serializer and quantization-aware training go through `quantize_weight`, so a weight trained
with fake quantization lands on exactly the int8 grid that conversion produces, and a saved model reloads with the
very same integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

INT8_RANGE = (-128, 127)  # the full signed range, as torch.ao and torchao use for symmetric weights
INT8_RESTRICTED_RANGE = (-127, 127)  # ONNX Runtime's symmetric weight range
INT7_RANGE = (-64, 63)  # "reduce_range" for weights (torchao, ONNX Runtime): leaves head-room in 16-bit accumulators
UINT8_RANGE = (0, 255)  # asymmetric activations (torch, ONNX Runtime)
UINT7_RANGE = (0, 127)  # the same with reduce_range


@dataclass
class QuantizedWeight:
    """An int8 matrix with its dequantization parameters: `fp32 ≈ (int8 - zero_point) * scale`.

    `scale` and `zero_point` have one entry per output row when `per_channel`, else one entry.
    """

    int8: torch.Tensor  # (out_features, in_features) or (num_embeddings, dim), dtype int8
    scale: torch.Tensor  # float32, shape (rows,) or (1,)
    zero_point: torch.Tensor  # int32, same shape as scale; always 0 for symmetric weights
    per_channel: bool

    def dequantize(self) -> torch.Tensor:
        scale = self.scale.view(-1, 1) if self.per_channel else self.scale
        zero_point = self.zero_point.view(-1, 1) if self.per_channel else self.zero_point
        return (self.int8.to(torch.float32) - zero_point.to(torch.float32)) * scale

    @property
    def shape(self) -> torch.Size:
        return self.int8.shape


def symmetric_scale(weight: torch.Tensor, per_channel: bool, qrange: tuple[int, int]) -> torch.Tensor:
    """amax / half-range, per row or for the whole matrix; never zero (an all-zero row gets the float eps)."""
    weight = weight.detach().to(torch.float32)
    amax = weight.abs().amax(dim=1) if per_channel else weight.abs().amax().reshape(1)
    half_range = (qrange[1] - qrange[0]) / 2
    return (amax / half_range).clamp_min(torch.finfo(torch.float32).eps)


def quantize_weight(weight: torch.Tensor, per_channel: bool = True, qrange: tuple[int, int] = INT8_RANGE) -> QuantizedWeight:
    """Round-to-nearest symmetric int8 quantization of a 2-D weight."""
    if weight.dim() != 2:
        raise ValueError(f"quantize_weight expects a 2-D matrix, got shape {tuple(weight.shape)}")
    scale = symmetric_scale(weight, per_channel, qrange)
    values = weight.detach().to(torch.float32) / (scale.view(-1, 1) if per_channel else scale)
    int8 = values.round().clamp(qrange[0], qrange[1]).to(torch.int8)
    return QuantizedWeight(int8=int8.contiguous(), scale=scale, zero_point=torch.zeros_like(scale, dtype=torch.int32),
                           per_channel=per_channel)


class _StraightThroughWeight(torch.autograd.Function):
    # A Function rather than `w + (q - w).detach()`: that sum is not bit-exact in floating point, and the
    # forward value must equal the converted int8 model's weight exactly.
    @staticmethod
    def forward(ctx, weight, per_channel, qmin, qmax):
        return quantize_weight(weight, per_channel, (qmin, qmax)).dequantize().to(weight.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None, None, None


def fake_quantize_weight(weight: torch.Tensor, per_channel: bool = True, qrange: tuple[int, int] = INT8_RANGE) -> torch.Tensor:
    """The dequantized int8 weight in the forward pass, the identity in the backward pass (straight-through
    estimator). The forward value equals `quantize_weight(weight).dequantize()` exactly."""
    return _StraightThroughWeight.apply(weight, per_channel, qrange[0], qrange[1])
