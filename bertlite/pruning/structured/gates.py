"""Multiplicative gates on every attention head and FFN neuron, attached to a BERT model with forward hooks.

transformers v5 has no `head_mask`, and copying its attention code would tie bertlite to one transformers version.
Hooks on two stable module boundaries are enough:

* head gate: a forward *pre*-hook on `attention.output.dense` sees the attention context (batch, tokens,
  heads * head_size) just before the output projection. Scaling head h's slice by g_h is the head mask of
  Michel et al. (2019); g_h = 0 gives exactly the output of the model with head h removed.
* neuron gate: a forward hook on `intermediate` scales the activations after the nonlinearity; g_j = 0 gives exactly
  the output of the model with neuron j removed.

Gates live outside the model (not in `parameters()`, not saved, not seen by an optimizer). With `requires_grad`,
each forward also keeps the gate expanded per example, so that after `backward()` the per-example gradients
dL_i/dg (= sum over tokens of activation x gradient for a neuron) are available to the importance criteria.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import BertliteError

SUPPORTED_MODEL_TYPES = ("bert", "bertlite")


@dataclass(frozen=True)
class LayerShape:
    heads: int
    ffn: int


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """The encoder layers of a BERT or Bertlite model (base model or any task head)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise BertliteError(
            f"Structured pruning supports BERT models (model_type 'bert' or 'bertlite'); this model has model_type "
            f"{model_type!r}. Distill into a BERT student first (`bertlite distill`), then prune it."
        )
    base = getattr(model, "base_model", model)
    return list(base.encoder.layer)


def head_size(model: nn.Module) -> int:
    config = model.config
    return getattr(config, "attention_head_size", None) or config.hidden_size // config.num_attention_heads


def layer_shapes(model: nn.Module) -> list[LayerShape]:
    """Heads and FFN neurons each layer currently has (read from the modules, so it is right mid-surgery too)."""
    size = head_size(model)
    return [LayerShape(heads=layer.attention.self.query.out_features // size, ffn=layer.intermediate.dense.out_features)
            for layer in encoder_layers(model)]


class UnitGates:
    """One gate per head (`heads[layer]`, shape (num_heads,)) and per FFN neuron (`ffn[layer]`, shape (ffn,)).

    Use as a context manager or call `attach()`/`remove()`. Gate values start at 1 (model unchanged); set entries to 0
    to mask units (`mask_heads`, `mask_neurons`). The gates are float32 on the model's device.
    """

    def __init__(self, model: nn.Module, requires_grad: bool = False):
        self.model = model
        self.layers = encoder_layers(model)
        self.shapes = layer_shapes(model)
        self.head_size = head_size(model)
        device = next(model.parameters()).device
        self.heads = [torch.ones(s.heads, device=device, requires_grad=requires_grad) for s in self.shapes]
        self.ffn = [torch.ones(s.ffn, device=device, requires_grad=requires_grad) for s in self.shapes]
        # Per-example views of the gates from forward passes with gradients enabled: (kind, layer, tensor (batch, n)).
        self.records: list[tuple[str, int, torch.Tensor]] = []
        self._handles: list = []

    # ----- attaching ----------------------------------------------------------------------------------------------
    def attach(self) -> "UnitGates":
        if self._handles:
            return self
        for index, layer in enumerate(self.layers):
            self._handles.append(layer.attention.output.dense.register_forward_pre_hook(self._head_hook(index)))
            self._handles.append(layer.intermediate.register_forward_hook(self._ffn_hook(index)))
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.records = []

    def __enter__(self) -> "UnitGates":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.remove()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    # ----- masks --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def mask_heads(self, heads: dict[int, list[int]]) -> None:
        for layer, indices in heads.items():
            self.heads[layer][list(indices)] = 0.0

    @torch.no_grad()
    def mask_neurons(self, neurons: dict[int, list[int]]) -> None:
        for layer, indices in neurons.items():
            self.ffn[layer][list(indices)] = 0.0

    def masked_heads(self) -> dict[int, list[int]]:
        return {i: torch.nonzero(g == 0).flatten().tolist() for i, g in enumerate(self.heads)}

    def masked_neurons(self) -> dict[int, list[int]]:
        return {i: torch.nonzero(g == 0).flatten().tolist() for i, g in enumerate(self.ffn)}

    def set_requires_grad(self, value: bool) -> None:
        for gate in [*self.heads, *self.ffn]:
            gate.requires_grad_(value)
            gate.grad = None

    def zero_grad(self) -> None:
        for gate in [*self.heads, *self.ffn]:
            gate.grad = None
        self.records = []

    # ----- hooks --------------------------------------------------------------------------------------------------
    def _per_example(self, kind: str, layer: int, gate: torch.Tensor, batch: int) -> torch.Tensor:
        """The gate as (batch, n). With gradients on, the expanded view keeps its own grad after backward: the
        per-example gate gradients (their sum over the batch is `gate.grad`)."""
        expanded = gate.unsqueeze(0).expand(batch, -1)
        if gate.requires_grad and torch.is_grad_enabled():
            expanded.retain_grad()
            self.records.append((kind, layer, expanded))
        return expanded

    def _head_hook(self, layer: int):
        def hook(module, args):
            context = args[0]
            gate = self.heads[layer]
            if gate.numel() == 0:
                return None
            shape = context.shape  # (batch, tokens, heads * head_size)
            g = self._per_example("heads", layer, gate, shape[0]).to(context.dtype)
            gated = context.view(*shape[:-1], gate.numel(), self.head_size) * g[:, None, :, None]
            return (gated.view(shape), *args[1:])

        return hook

    def _ffn_hook(self, layer: int):
        def hook(module, args, output):
            gate = self.ffn[layer]
            if gate.numel() == 0:
                return None
            g = self._per_example("ffn", layer, gate, output.shape[0]).to(output.dtype)
            return output * g[:, None, :]

        return hook
