"""Quantization-aware training: train with the int8 rounding in the loop, then convert to the same int8 format.

`prepare_qat(model)` swaps each Linear that `quantize_model` would quantize for a `FakeQuantLinear`: in the forward
pass its weight is exactly the int8 weight conversion will produce (same `quantize_weight`), and its input is
rounded the way the chosen backend quantizes activations; in the backward pass both roundings are the identity
(straight-through estimator), so the fp32 weights keep learning. `FakeQuantLinear` subclasses `nn.Linear` and
reuses the original parameters: state-dict keys, checkpoints and optimizer references are unchanged.
`convert_qat(model)` then produces the int8 model with `quantize_model`.
"""

from __future__ import annotations

import copy

import torch

from ..errors import BertliteError
from .backends import get_backend
from .config import QuantizationConfig
from .convert import make_config, quantize_model, set_submodule, split_linears
from .weights import INT7_RANGE, INT8_RANGE, UINT7_RANGE, UINT8_RANGE, fake_quantize_weight

QAT_ATTR = "bertlite_qat_config"


def fake_quantize_activations(x: torch.Tensor, per_token: bool, symmetric: bool, reduce_range: bool) -> torch.Tensor:
    """Round x the way a backend quantizes activations at run time (from the values' own range, per token or per
    tensor), with a straight-through gradient. torch/onnxruntime: asymmetric uint8; torchao: symmetric int8."""
    values = x.detach()
    reduce = {"dim": -1, "keepdim": True} if per_token else {}
    if symmetric:
        qmin, qmax = INT7_RANGE if reduce_range else INT8_RANGE
        scale = values.abs().amax(**reduce) / ((qmax - qmin) / 2)
        zero_point = torch.zeros_like(scale)
    else:
        qmin, qmax = UINT7_RANGE if reduce_range else UINT8_RANGE
        low = values.amin(**reduce).clamp(max=0.0)
        high = values.amax(**reduce).clamp(min=0.0)
        scale = (high - low) / (qmax - qmin)
        zero_point = (qmin - torch.round(low / scale.clamp_min(torch.finfo(torch.float32).eps))).clamp(qmin, qmax)
    scale = scale.clamp_min(torch.finfo(torch.float32).eps)
    rounded = (torch.round(values / scale) + zero_point).clamp(qmin, qmax)
    return x + ((rounded - zero_point) * scale - x).detach()


class FakeQuantLinear(torch.nn.Linear):
    def __init__(self, in_features, out_features, bias=True, *, per_channel=True, weight_qrange=INT8_RANGE,
                 per_token=False, symmetric_activations=False, reduce_range=False, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.per_channel = per_channel
        self.weight_qrange = tuple(weight_qrange)
        self.per_token = per_token
        self.symmetric_activations = symmetric_activations
        self.reduce_range = reduce_range

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, **settings) -> "FakeQuantLinear":
        fake = cls(linear.in_features, linear.out_features, linear.bias is not None, device="meta", **settings)
        fake.weight, fake.bias = linear.weight, linear.bias  # the same Parameter objects
        return fake

    def to_linear(self) -> torch.nn.Linear:
        linear = torch.nn.Linear(self.in_features, self.out_features, self.bias is not None, device="meta")
        linear.weight, linear.bias = self.weight, self.bias
        return linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_quantize_activations(x, self.per_token, self.symmetric_activations, self.reduce_range)
        weight = fake_quantize_weight(self.weight, self.per_channel, self.weight_qrange)
        return torch.nn.functional.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, per_channel={self.per_channel}, weight_range={self.weight_qrange}, "
                f"per_token={self.per_token}, symmetric_activations={self.symmetric_activations}")


def prepare_qat(model: torch.nn.Module, config: QuantizationConfig | dict | None = None, **settings) -> torch.nn.Module:
    """Swap, in place, the Linears that int8 conversion would quantize for fake-quantized ones. Returns `model`.

    Takes the same settings as `quantize_model` (backend, keep_fp32, per_channel, reduce_range, activations) so
    training sees the rounding of the backend the model will run on.
    """
    if getattr(model, QAT_ATTR, None) is not None:
        raise BertliteError("prepare_qat was already applied to this model.")
    config = make_config(config, **settings)
    backend = get_backend(config.backend, check=False)
    resolved = backend.resolve(config)
    to_quantize, _ = split_linears(model, config.keep_fp32)
    fake_settings = dict(per_channel=resolved.per_channel, weight_qrange=backend.weight_qrange(resolved),
                         per_token=resolved.activations == "per_token",
                         symmetric_activations=backend.symmetric_activations, reduce_range=resolved.reduce_range)
    for name in to_quantize:
        set_submodule(model, name, FakeQuantLinear.from_linear(model.get_submodule(name), **fake_settings))
    setattr(model, QAT_ATTR, config)
    return model


def convert_qat(model: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """The int8 model (format of `quantize_model`, savable with `save_quantized`) from a `prepare_qat` model."""
    config = getattr(model, QAT_ATTR, None)
    if config is None:
        raise BertliteError("convert_qat needs a model prepared with prepare_qat.")
    model = model if inplace else copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, FakeQuantLinear):
            set_submodule(model, name, module.to_linear())
    delattr(model, QAT_ATTR)
    return quantize_model(model, config, inplace=True)
