"""`quantize_model`: swap a model's Linear layers (and optionally its word embeddings) for int8 ones.

Layers are found generically, by type, never by position: structurally pruned models have layers of different
shapes, and every Linear is quantized with the shape it has.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..errors import BertliteError, check_model
from .backends import get_backend
from .backends.base import Int8Settings
from .config import DEFAULT_KEEP_FP32, QuantizationConfig, matches_any
from .embedding import Int8Embedding
from .weights import quantize_weight

RECORD_ATTR = "bertlite_quantization"  # attribute of a quantized model holding its QuantizationRecord


@dataclass
class QuantizationRecord:
    """What was done to a model; travels on the model object and into quantization_config.json."""

    config: QuantizationConfig
    settings: Int8Settings  # the config with "auto" choices resolved
    linear_modules: list[str] = field(default_factory=list)  # quantized to int8
    embedding_modules: list[str] = field(default_factory=list)
    fp32_linear_modules: list[str] = field(default_factory=list)  # kept fp32 by a keep_fp32 pattern


def make_config(config: QuantizationConfig | dict | None = None, **settings) -> QuantizationConfig:
    if isinstance(config, dict):
        config = QuantizationConfig.from_dict(config)
    config = copy.deepcopy(config) if config is not None else QuantizationConfig()
    for key, value in settings.items():
        if not hasattr(config, key):
            raise BertliteError(f"Unknown quantization setting {key!r}; known: {', '.join(config.to_dict())}.")
        setattr(config, key, value)
    config.__post_init__()
    return config


def linear_module_names(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and name]


def split_linears(model: torch.nn.Module, keep_fp32) -> tuple[list[str], list[str]]:
    """(names to quantize, names kept fp32). A pattern the user added that matches no Linear is an error: a typo
    would otherwise silently quantize the layer the user meant to protect."""
    names = linear_module_names(model)
    if not names:
        raise BertliteError(f"{type(model).__name__} has no nn.Linear layers to quantize.")
    for pattern in keep_fp32:
        if pattern not in DEFAULT_KEEP_FP32 and not any(matches_any(n, [pattern]) for n in names):
            example = ", ".join(names[:3])
            raise BertliteError(f"--keep-fp32 pattern {pattern!r} matches no Linear layer. Layer names look like: {example}.")
    # A Linear without weights (structured pruning removed a whole attention or FFN block) has nothing to quantize.
    kept = [n for n in names if matches_any(n, keep_fp32) or not model.get_submodule(n).weight.numel()]
    return [n for n in names if n not in kept], kept


def set_submodule(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def input_embedding_name(model: torch.nn.Module) -> str | None:
    get = getattr(model, "get_input_embeddings", None)
    embedding = get() if get else None
    if not isinstance(embedding, torch.nn.Embedding):
        return None
    return next((n for n, m in model.named_modules() if m is embedding), None)


def quantize_model(model: torch.nn.Module, config: QuantizationConfig | dict | None = None, *, inplace: bool = False,
                   **settings) -> torch.nn.Module:
    """Dynamic int8 quantization of `model` (int8 weights; activations quantized per batch at run time).

    `settings` override fields of `config` (backend, keep_fp32, per_channel, reduce_range, activations,
    quantize_embeddings).
    Returns the quantized model (a copy unless `inplace`); for the onnxruntime backend an `OnnxInt8Model`.
    Save it with `save_quantized`.
    """
    check_model(model, needs_config=False)
    config = make_config(config, **settings)
    backend = get_backend(config.backend)
    resolved = backend.resolve(config)
    if getattr(model, RECORD_ATTR, None) is not None:
        raise BertliteError("This model is already quantized.")
    to_quantize, kept = split_linears(model, config.keep_fp32)
    record = QuantizationRecord(config, resolved, to_quantize, [], kept)

    if backend.is_graph_backend:
        quantized = backend.quantize_graph(model, config, resolved, kept)
        if config.quantize_embeddings:
            record.embedding_modules = [n for n in [input_embedding_name(model)] if n]
        setattr(quantized, RECORD_ATTR, record)
        return quantized

    model = model if inplace else copy.deepcopy(model)
    model.eval()
    qrange = backend.weight_qrange(resolved)
    with torch.no_grad():
        for name in tqdm(to_quantize, desc=f"Quantizing ({backend.name})", leave=False, disable=len(to_quantize) < 50):
            linear = model.get_submodule(name)
            weight = quantize_weight(linear.weight, config.per_channel, qrange)
            set_submodule(model, name, backend.make_linear(weight, linear.bias, resolved))
        if config.quantize_embeddings:
            name = input_embedding_name(model)
            if name is None:
                raise BertliteError(f"{type(model).__name__} has no nn.Embedding input embeddings to quantize.")
            set_submodule(model, name, Int8Embedding.from_float(model.get_submodule(name)))
            record.embedding_modules = [name]
    setattr(model, RECORD_ATTR, record)
    return model
