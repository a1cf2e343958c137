"""Surgery: build the physically smaller Bertlite model that has the given heads and FFN neurons removed.

For a removed head, its rows of query/key/value (weights and biases) and its columns of the attention output
projection go; for a removed neuron, its row of the FFN input projection (and bias) and its column of the FFN output
projection. Biases of the output projections stay, which is why the result equals the unpruned model with those
units' gates set to 0 (and not merely close to it).

The result is a new `Bertlite*` model (the matching task class, same dtype/device/train mode/attention backend);
the input model is left untouched. Its config (`model_type: "bertlite"`) lists the per-layer sizes, so
`save_pretrained` + `from_pretrained` round-trip.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.initialization import no_init_weights

from ...errors import BertliteError
from .gates import LayerShape, UnitGates, encoder_layers, head_size, layer_shapes
from ...modeling import AUTO_CLASSES, BertliteConfig, BertliteModel
from .selection import PruningPlan

# BERT class name -> the Bertlite class with the same head (a Bertlite model maps to its own class).
BERTLITE_CLASSES = {cls.__name__.replace("Bertlite", "Bert"): cls for cls in AUTO_CLASSES.values()}
BERTLITE_CLASSES.update({cls.__name__: cls for cls in list(BERTLITE_CLASSES.values())})


def bertlite_class_for(model: nn.Module) -> type:
    name = type(model).__name__
    if name not in BERTLITE_CLASSES:
        raise BertliteError(f"Structured pruning supports {', '.join(sorted(k for k in BERTLITE_CLASSES if k.startswith('BertFor') or k == 'BertModel'))}; "
                            f"got {name}. Load the model with one of those classes (e.g. AutoModelForSequenceClassification).")
    return BERTLITE_CLASSES[name]


def _kept(total: int, removed: list[int], unit: str, layer: int) -> list[int]:
    removed_set = set(int(i) for i in removed)
    if len(removed_set) != len(removed):
        raise BertliteError(f"Layer {layer}: the {unit} to remove contain duplicates: {sorted(removed)}.")
    bad = sorted(i for i in removed_set if not 0 <= i < total)
    if bad:
        raise BertliteError(f"Layer {layer} has {total} {unit} (indices 0..{total - 1}); cannot remove {bad}.")
    return [i for i in range(total) if i not in removed_set]


def _check_plan_layers(plan: PruningPlan, num_layers: int) -> None:
    for kind, per_layer in (("heads", plan.heads), ("ffn", plan.ffn)):
        bad = sorted(layer for layer in per_layer if not 0 <= int(layer) < num_layers)
        if bad:
            raise BertliteError(f"The model has {num_layers} layers (0..{num_layers - 1}); the {kind} plan names layers {bad}.")


def pruned_config(model: nn.Module, shapes: list[LayerShape]) -> BertliteConfig:
    """A BertliteConfig for `model` with the given per-layer shapes (original sizes stay in num_attention_heads and
    intermediate_size; `architectures` names the Bertlite class)."""
    source = model.config
    values = source.to_dict()
    for key in ("model_type", "transformers_version", "auto_map", "architectures", "layer_num_attention_heads",
                "layer_intermediate_sizes", "attention_head_size", "_attn_implementation_autoset"):
        values.pop(key, None)
    config = BertliteConfig(**values, layer_num_attention_heads=[s.heads for s in shapes],
                            layer_intermediate_sizes=[s.ffn for s in shapes], attention_head_size=head_size(model))
    config.architectures = [bertlite_class_for(model).__name__]
    config._attn_implementation = source._attn_implementation
    return config


def _slice(tensor: torch.Tensor, dim: int, index: list[int]) -> torch.Tensor:
    return tensor.index_select(dim, torch.tensor(index, dtype=torch.long, device=tensor.device)).clone()


@torch.no_grad()
def prune_model(model: nn.Module, plan: PruningPlan | None = None, *, heads: dict[int, list[int]] | None = None,
                ffn: dict[int, list[int]] | None = None) -> nn.Module:
    """Return a new, physically smaller Bertlite model without the heads / FFN neurons of `plan` (or of the
    `heads=` / `ffn=` dicts: layer -> indices to remove, in the model's current numbering)."""
    if plan is None:
        plan = PruningPlan(heads=dict(heads or {}), ffn=dict(ffn or {}))
    elif heads or ffn:
        raise BertliteError("Pass either a PruningPlan or heads=/ffn= dicts, not both.")
    layers = encoder_layers(model)  # refuses non-BERT model types first: the most useful message
    target_class = bertlite_class_for(model)
    if getattr(model.config, "is_decoder", False) or getattr(model.config, "add_cross_attention", False):
        raise BertliteError("Structured pruning supports encoder BERT models only (this one is a decoder).")
    _check_plan_layers(plan, len(layers))
    size = head_size(model)
    old_shapes = layer_shapes(model)

    state = model.state_dict()
    prefix = _layer_prefix(model)
    new_shapes = []
    for i, shape in enumerate(old_shapes):
        kept_heads = _kept(shape.heads, plan.heads.get(i, []), "attention heads", i)
        kept_neurons = _kept(shape.ffn, plan.ffn.get(i, []), "FFN neurons", i)
        new_shapes.append(LayerShape(heads=len(kept_heads), ffn=len(kept_neurons)))
        rows = [h * size + d for h in kept_heads for d in range(size)]  # the head's slice of q/k/v outputs
        p = f"{prefix}{i}."
        for name in ("query", "key", "value"):
            state[f"{p}attention.self.{name}.weight"] = _slice(state[f"{p}attention.self.{name}.weight"], 0, rows)
            state[f"{p}attention.self.{name}.bias"] = _slice(state[f"{p}attention.self.{name}.bias"], 0, rows)
        state[f"{p}attention.output.dense.weight"] = _slice(state[f"{p}attention.output.dense.weight"], 1, rows)
        state[f"{p}intermediate.dense.weight"] = _slice(state[f"{p}intermediate.dense.weight"], 0, kept_neurons)
        state[f"{p}intermediate.dense.bias"] = _slice(state[f"{p}intermediate.dense.bias"], 0, kept_neurons)
        state[f"{p}output.dense.weight"] = _slice(state[f"{p}output.dense.weight"], 1, kept_neurons)

    config = pruned_config(model, new_shapes)
    parameter = next(model.parameters())
    kwargs = {"add_pooling_layer": model.pooler is not None} if target_class is BertliteModel else {}
    with no_init_weights():  # every weight is overwritten by load_state_dict below
        pruned = target_class(config, **kwargs)
    pruned.tie_weights()  # no_init_weights also skipped the tying that init_weights does
    pruned.load_state_dict(state, strict=True)
    pruned.to(device=parameter.device, dtype=parameter.dtype)
    pruned.train(model.training)
    if hasattr(model, "name_or_path"):
        pruned.name_or_path = model.name_or_path
    return pruned


def _layer_prefix(model: nn.Module) -> str:
    """State-dict key prefix of encoder layer modules, e.g. 'bert.encoder.layer.' for a task model."""
    first = encoder_layers(model)[0]
    for name, module in model.named_modules():
        if module is first:
            return name[: -len("0")]
    raise BertliteError("Could not locate the encoder layers in the model's state dict.")


def prune_gated(model: nn.Module, gates: UnitGates) -> nn.Module:
    """Surgery that removes every unit whose gate is 0 (e.g. after gradual pruning with masks)."""
    return prune_model(model, PruningPlan(heads=gates.masked_heads(), ffn=gates.masked_neurons()))


def describe_shapes(before: list[LayerShape], after: list[LayerShape]) -> str:
    """A per-layer table of heads and FFN neurons before -> after, for logs and the CLI."""
    lines = [f"{'layer':>5}  {'heads':>9}  {'ffn':>11}"]
    for i, (b, a) in enumerate(zip(before, after)):
        lines.append(f"{i:>5}  {b.heads:>3} -> {a.heads:<3}  {b.ffn:>4} -> {a.ffn:<4}")
    tb, ta = sum(s.heads for s in before), sum(s.heads for s in after)
    fb, fa = sum(s.ffn for s in before), sum(s.ffn for s in after)
    lines.append(f"{'total':>5}  {tb:>3} -> {ta:<3}  {fb:>4} -> {fa:<4}")
    return "\n".join(lines)
