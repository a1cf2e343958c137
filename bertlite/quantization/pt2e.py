"""The fastest CPU path measured here: the int8 model lowered through PT2E (torch.export, torchao's
X86InductorQuantizer with dynamic activations, inductor with freezing), which fuses every int8 Linear with its
activation quantization and rescale into oneDNN `qlinear` kernels.

The compiled graph cannot be saved as modules, so it is built when a model is loaded, from the int8 weights
bertlite saved: each Linear's fp32 stand-in holds the dequantized weight, and an observer that returns the saved
scale makes PT2E land on exactly the saved integers (round(q * s / s) = q), never re-quantizing fp32 weights.

Every new input shape compiles (20-40 s on 2 cores for bert-base), so inputs are padded up to a few fixed shapes
(buckets): batch to a power of two, sequence to a multiple of 32 up to 128, then of 128. Padded rows and
positions are masked out and sliced off the output.

Serve it with OpenMP's default wait policy: under OMP_WAIT_POLICY=PASSIVE (what bertlite's CLI sets for training)
threads sleep between the many small kernels of a batch-1 pass, which measured 2.9x instead of 3.9x over fp32.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import time
import warnings
from typing import Iterable

import torch
from torch import nn

from ..errors import BertliteError
from .backends import get_backend
from .backends.torchao_backend import quiet_torchao_import
from .convert import RECORD_ATTR, set_submodule
from .weights import INT8_RANGE

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _pt2e_api():
    try:
        # Importing inductor's freezing passes runs a deprecated `torch.jit.script_method` inside torch itself
        # (torch.utils.mkldnn); that one message says nothing to a bertlite user.
        with quiet_torchao_import(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated", category=DeprecationWarning)
            import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
            from torchao.quantization.pt2e import PerChannelMinMaxObserver
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as err:
        raise BertliteError(f"The PT2E path needs torchao>=0.14 ({err}): pip install 'torchao>=0.14'.") from err
    return x86, PerChannelMinMaxObserver, prepare_pt2e, convert_pt2e


def _exact_weight_config(x86, observer_base, scale: torch.Tensor, reduce_range: bool):
    """X86InductorQuantizer's dynamic config, with a weight observer that reports `scale` instead of measuring."""
    from dataclasses import replace

    class SavedScaleObserver(observer_base):
        def __init__(self, *args, saved_scale=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.register_buffer("saved_scale", saved_scale.clone())

        def calculate_qparams(self):
            return self.saved_scale.to(torch.float32), torch.zeros_like(self.saved_scale, dtype=torch.int32)

    base = x86.get_default_x86_inductor_quantization_config(is_dynamic=True, reduce_range=reduce_range)
    weight_spec = replace(base.weight, quant_min=INT8_RANGE[0], quant_max=INT8_RANGE[1],
                          observer_or_fake_quant_ctr=SavedScaleObserver.with_args(saved_scale=scale, eps=torch.finfo(torch.float32).eps))
    return replace(base, weight=weight_spec)


def _quantized_graph(module: nn.Module, example: tuple, quantizer, strict: bool = True):
    """torch.export -> prepare_pt2e -> one calibration call -> convert_pt2e (weights folded to int8 constants)."""
    _, _, prepare_pt2e, convert_pt2e = _pt2e_api()
    with torch.no_grad():
        prepared = prepare_pt2e(torch.export.export(module, example, strict=strict).module(), quantizer)
        prepared(*example)
        return convert_pt2e(prepared)


@functools.lru_cache(maxsize=1)
def _prime_inductor() -> None:
    """Compile a tiny PT2E-quantized Linear once per process. Measured with torch 2.13 / torchao 0.18: the first
    freezing compile of a process left the int8 Linears unfused (a bert-base graph compiled first ran at about fp32
    speed, the same graph compiled second did not), so the real graphs must not be the first."""
    x86 = _pt2e_api()[0]
    import torch._inductor.config as inductor_config

    example = (torch.randn(2, 16),)
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config(is_dynamic=True))
    graph = _quantized_graph(nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)).eval(), example, quantizer)
    with torch.no_grad(), inductor_config.patch(freezing=True):
        torch.compile(graph)(*example)


def _bucket(value: int, buckets: tuple[int, ...]) -> int:
    for bucket in buckets:
        if value <= bucket:
            return bucket
    raise BertliteError(f"Input size {value} is above the largest compiled bucket {buckets[-1]}.")


def default_seq_buckets(max_positions: int) -> tuple[int, ...]:
    sizes = [32, 64, 96, 128] + list(range(256, max_positions + 1, 128))
    return tuple(s for s in sizes if s <= max_positions) or (max_positions,)


def default_batch_buckets(largest: int = 256) -> tuple[int, ...]:
    return tuple(2 ** i for i in range(largest.bit_length()) if 2 ** i <= largest)


class _Logits(nn.Module):
    """What gets exported: positional inputs in, logits out."""

    def __init__(self, model: nn.Module, input_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.input_names, inputs))).logits


class Pt2eInt8Model(nn.Module):
    """An int8 model compiled through PT2E, called like the Transformers model it came from (keyword inputs,
    output with `.logits`). Built by `compile_pt2e`."""

    is_compiled_graph = True  # no per-layer modules to probe (see quantization.check)

    def __init__(self, carrier: nn.Module, quantizer, input_names: tuple[str, ...], seq_buckets, batch_buckets,
                 compile: bool, pad_token_id: int):
        super().__init__()
        self.config = carrier.config
        self._carrier = _Logits(carrier, input_names)  # fp32 stand-in with the dequantized int8 weights
        self._quantizer = quantizer
        self.input_names = input_names
        self.seq_buckets = tuple(seq_buckets)
        self.batch_buckets = tuple(batch_buckets)
        self.compile = compile
        self.pad_token_id = pad_token_id
        self._graphs: dict[tuple[int, int], object] = {}

    def train(self, mode: bool = True):  # exported graphs have no train mode; this model only infers
        return self

    def _key(self, batch: int, seq: int) -> tuple[int, int]:
        return _bucket(batch, self.batch_buckets), _bucket(seq, self.seq_buckets)

    def graph(self, batch: int, seq: int):
        """The quantized (and, with compile, inductor-compiled) graph for the bucket of one input shape."""
        return self._graph_for(self._key(batch, seq))

    def _graph_for(self, key: tuple[int, int]):
        if key not in self._graphs:
            started = time.perf_counter()
            example = tuple(torch.ones(key, dtype=torch.long) for _ in self.input_names)
            converted = _quantized_graph(self._carrier, example, self._quantizer, strict=False)
            if self.compile:
                from .backends.torchao_backend import InductorScoped

                _prime_inductor()
                # Freezing: weights become constants, so int8 Linear + rescale fuse into qlinear; set only while the
                # graph runs (each bucket's graph has one shape, so it compiles here, on this first call).
                converted = InductorScoped(torch.compile(converted), {"freezing": True})
                with torch.no_grad():
                    converted(*example)  # compile now, so the first real call is not the slow one
            logger.info("PT2E int8 graph for batch %d x %d ready in %.0f s", *key, time.perf_counter() - started)
            self._graphs[key] = converted
        return self._graphs[key]

    def _pad(self, inputs: dict, batch: int, seq: int) -> tuple[torch.Tensor, ...]:
        padded = []
        for name in self.input_names:
            value = inputs[name]
            fill = self.pad_token_id if name == "input_ids" else 0
            out = torch.full((batch, seq), fill, dtype=torch.long)
            out[: value.shape[0], : value.shape[1]] = value
            padded.append(out)
        return tuple(padded)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **ignored):
        from transformers.modeling_outputs import SequenceClassifierOutput

        batch, seq = input_ids.shape
        given = {"input_ids": input_ids,
                 "attention_mask": attention_mask if attention_mask is not None else torch.ones_like(input_ids),
                 "token_type_ids": token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)}
        key = self._key(batch, seq)
        logits = self._graph_for(key)(*self._pad(given, *key))
        logits = logits[:batch]
        if logits.dim() == 3:  # per-token heads: drop the padded positions too
            logits = logits[:, :seq]
        return SequenceClassifierOutput(logits=logits)


def compile_pt2e(model: nn.Module, *, seq_buckets: Iterable[int] | None = None, batch_buckets: Iterable[int] | None = None,
                 warmup: Iterable[tuple[int, int]] = (), compile: bool = True) -> Pt2eInt8Model:
    """Lower a model quantized by bertlite (`quantize_model` / `load_quantized`, backend torch or torchao) through
    PT2E. The saved int8 weights are used exactly; activations are quantized per tensor (uint8) at run time, the
    `torch` backend's default. `warmup`: (batch, seq) shapes to compile now rather than on first use.
    `compile=False` runs the quantized graph without inductor (slow; for checking numbers)."""
    record = getattr(model, RECORD_ATTR, None)
    if record is None:
        raise BertliteError("compile_pt2e takes a model quantized by bertlite (quantize_model or load_quantized); "
                            "quantize the fp32 model first.")
    backend = get_backend(record.config.backend)
    if backend.is_graph_backend:
        raise BertliteError("An ONNX Runtime int8 model is already a compiled graph; compile_pt2e needs the torch or torchao backend.")
    x86, observer_base = _pt2e_api()[:2]
    carrier = copy.deepcopy(model)
    quantizer = x86.X86InductorQuantizer()
    for name in record.linear_modules:
        read = backend.read_linear(carrier.get_submodule(name))
        if read is None:
            raise BertliteError(f"{name} is not an int8 module of the {backend.name!r} backend.")
        weight, bias = read
        if not torch.all(weight.zero_point == 0):
            raise BertliteError(f"{name} has an asymmetric int8 weight; PT2E's x86 kernels take symmetric weights only.")
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(weight.dequantize())
            if bias is not None:
                linear.bias.copy_(bias.to(torch.float32))
        set_submodule(carrier, name, linear)
        scale = weight.scale.reshape(-1).expand(weight.shape[0])  # a per-tensor scale repeated for every row
        config = _exact_weight_config(x86, observer_base, scale.to(torch.float32), record.settings.reduce_range)
        quantizer.set_module_name_qconfig(f"model.{name}", config)  # "model." : the _Logits wrapper's attribute
    carrier.eval()
    accepted = inspect.signature(carrier.forward).parameters
    input_names = tuple(n for n in INPUT_NAMES if n in accepted
                        and (n != "token_type_ids" or getattr(carrier.config, "type_vocab_size", 0)))
    max_positions = getattr(carrier.config, "max_position_embeddings", 512)
    pad = getattr(carrier.config, "pad_token_id", None) or 0
    result = Pt2eInt8Model(carrier, quantizer, input_names, tuple(seq_buckets or default_seq_buckets(max_positions)),
                           tuple(batch_buckets or default_batch_buckets()), compile, pad)
    setattr(result, RECORD_ATTR, record)
    for batch, seq in warmup:
        result.graph(batch, seq)
    return result
