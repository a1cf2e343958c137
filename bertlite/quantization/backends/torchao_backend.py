"""torchao backend: int8 weights as torchao `Int8Tensor` parameters, int8 activations per token.

Eager it is slower than the `torch` backend (torchao's CPU path is written for the compiler); under
`torch.compile` with inductor freezing it is the fastest PyTorch path measured here (see docs/quantization.md).
The module stays a plain `nn.Linear` whose weight is the tensor subclass, exactly as `torchao.quantize_` makes it,
because that is the form inductor's pattern matching was measured with.
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import contextmanager

import torch

from ...errors import BertliteError
from ..weights import INT7_RANGE, INT8_RANGE, QuantizedWeight
from .base import Int8Backend, Int8Settings

MIN_TORCHAO = (0, 14)  # Int8Tensor (the "version 2" int8 config) appeared in 0.14


@contextmanager
def quiet_torchao_import():
    # torchao's CPU wheels try to load their CUDA kernel libraries at import and log one warning per library.
    from ..._quiet import install

    install()  # the same two known lines, also when torchao is imported later by other code
    logger = logging.getLogger("torchao")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _torchao():
    with quiet_torchao_import():
        import torchao
        from torchao.quantization import Int8Tensor, MappingType, PerRow, PerTensor
        from torchao.quantization.quantize_.workflows.int8.int8_tensor import QuantizeTensorToInt8Kwargs
    return torchao, Int8Tensor, QuantizeTensorToInt8Kwargs, MappingType, PerRow, PerTensor


class TorchaoBackend(Int8Backend):
    name = "torchao"
    summary = "torchao Int8Tensor (int8 activations per token); fastest under torch.compile"
    # reduce_range: activations and weights both use 7 bits (torchao's definition).
    activation_modes = ("per_token", "per_tensor")
    symmetric_activations = True
    install_hint = "pip install 'torchao>=0.14'"

    def check_available(self) -> None:
        if importlib.util.find_spec("torchao") is None:
            raise BertliteError(f"The 'torchao' backend needs torchao, which is not installed: {self.install_hint}")
        try:
            torchao = _torchao()[0]
        except ImportError as err:
            raise BertliteError(f"torchao is installed but its int8 API could not be imported ({err}); "
                                f"this backend needs torchao>={'.'.join(map(str, MIN_TORCHAO))}.") from err
        version = tuple(int(part) for part in torchao.__version__.split("+")[0].split(".")[:2])
        if version < MIN_TORCHAO:
            raise BertliteError(f"torchao {torchao.__version__} is too old for the int8 backend: {self.install_hint}")

    def weight_qrange(self, settings: Int8Settings) -> tuple[int, int]:
        return INT7_RANGE if settings.reduce_range else INT8_RANGE

    def make_linear(self, weight: QuantizedWeight, bias, settings: Int8Settings):
        _, Int8Tensor, ActKwargs, MappingType, PerRow, PerTensor = _torchao()
        out_features, in_features = weight.shape
        if weight.per_channel:
            scale, block_size = weight.scale.view(out_features, 1), [1, in_features]
        else:
            scale, block_size = weight.scale.view(1, 1), [out_features, in_features]
        qweight = Int8Tensor(
            weight.int8.contiguous(), scale.to(torch.float32).contiguous(), block_size, torch.float32,
            zero_point=weight.zero_point.view_as(scale).to(torch.int8),
            act_quant_kwargs=ActKwargs(granularity=PerRow() if settings.activations == "per_token" else PerTensor(),
                                       mapping_type=MappingType.SYMMETRIC, reduce_range=settings.reduce_range),
            reduce_range=settings.reduce_range,
        )
        linear = torch.nn.Linear(in_features, out_features, bias=bias is not None, device="meta")
        linear.weight = torch.nn.Parameter(qweight, requires_grad=False)
        if bias is not None:
            linear.bias = torch.nn.Parameter(bias.detach().to(torch.float32).clone(), requires_grad=False)
        return linear

    def read_linear(self, module):
        if not isinstance(module, torch.nn.Linear) or type(module.weight).__name__ != "Int8Tensor":
            return None
        weight = module.weight
        per_channel = weight.block_size[0] == 1 and weight.shape[0] > 1
        zero_point = weight.zero_point if weight.zero_point is not None else torch.zeros_like(weight.scale)
        quantized = QuantizedWeight(weight.qdata, weight.scale.reshape(-1).to(torch.float32),
                                    zero_point.reshape(-1).to(torch.int32), per_channel)
        return quantized, (None if module.bias is None else module.bias.detach())


def inference_inductor_flags() -> dict:
    """The inductor settings the int8 speedups were measured with: freezing (weights become constants, so int8
    matmul + rescale patterns fuse) plus torchao's recommended flags, read off without leaving them set."""
    import torch._inductor.config as inductor_config

    before = inductor_config.get_config_copy()
    precision = torch.get_float32_matmul_precision()
    try:
        inductor_config.freezing = True
        if importlib.util.find_spec("torchao") is not None:
            with quiet_torchao_import():
                from torchao.quantization.utils import recommended_inductor_config_setter
            recommended_inductor_config_setter()
        after = inductor_config.get_config_copy()
    finally:
        flags = {key: value for key, value in inductor_config.get_config_copy().items()
                 if isinstance(value, (bool, int, float, str)) and before.get(key) != value}
        for key in flags:
            setattr(inductor_config, key, before[key])
        torch.set_float32_matmul_precision(precision)
    return {key: after[key] for key in flags}


class InductorScoped(torch.nn.Module):
    """A compiled module that runs with the inductor settings it needs and restores the process's own after every
    call: inductor compiles lazily (on the first call with each new input shape), so the settings must be in force
    at each call, not only when `torch.compile` is called. Attributes are read through to the original model."""

    def __init__(self, compiled: torch.nn.Module, flags: dict):
        super().__init__()
        self.compiled = compiled
        self.flags = flags

    def forward(self, *args, **kwargs):
        import torch._inductor.config as inductor_config

        with inductor_config.patch(self.flags):
            return self.compiled(*args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["compiled"], name)


def compile_for_inference(model: torch.nn.Module, dynamic: bool | None = None) -> torch.nn.Module:
    """`torch.compile` with `inference_inductor_flags()`, in force only while the model runs (process-wide inductor
    settings are left as they were). The first call with each new input shape compiles (20-40 s on 2 cores for
    bert-base)."""
    model.eval()
    return InductorScoped(torch.compile(model, dynamic=dynamic), inference_inductor_flags())
