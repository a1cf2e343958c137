"""Masks: choosing them from importance scores, and attaching/removing them with `torch.nn.utils.prune`.

A mask is attached with `prune.custom_from_mask`, which reparametrises `weight` as `weight_orig * weight_mask`
through a forward pre-hook. The mask therefore stays in force while the model trains (the gradient reaching a pruned
entry is multiplied by zero), and `make_permanent` (`prune.remove`) folds it into a plain `weight` with zeros before
saving, so the saved safetensors load in plain transformers.

Pruning is monotone: an entry pruned once stays pruned, which `select_masks` enforces by ranking already-pruned
entries below every live one.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

from ...errors import BertliteError

SCOPES = ("global", "layer")
COLLAPSE_ACTIONS = ("error", "warn", "ignore")


def is_masked(module: nn.Module) -> bool:
    return hasattr(module, "weight_mask") and hasattr(module, "weight_orig")


def current_mask(module: nn.Module) -> torch.Tensor:
    """The module's mask (1 = kept), all ones when it has none."""
    if is_masked(module):
        return module.weight_mask.detach()
    return torch.ones_like(module.weight, dtype=torch.float32)


def trainable_weight(module: nn.Module) -> nn.Parameter:
    """The parameter an optimizer updates: `weight_orig` while masked, `weight` otherwise."""
    return module.weight_orig if is_masked(module) else module.weight


@torch.no_grad()
def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight as the forward pass sees it. Computed here because `module.weight` is only refreshed by the
    pre-hook at the next forward call (it is stale right after a rewind)."""
    if is_masked(module):
        return module.weight_orig * module.weight_mask
    return module.weight.detach()


def set_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Attach `mask` (1 = keep) to `module.weight`, replacing any mask it had.

    The previous mask is folded in with `prune.remove` first (the weights it zeroed are pruned in the new mask too,
    see `select_masks`), so a module never accumulates a PruningContainer of stale masks over many iterations.
    """
    if mask.shape != module.weight.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match weight shape {tuple(module.weight.shape)}")
    if is_masked(module):
        prune.remove(module, "weight")
    prune.custom_from_mask(module, "weight", mask.to(device=module.weight.device, dtype=module.weight.dtype))


def attach_masks(targets: dict[str, nn.Module], masks: dict[str, torch.Tensor]) -> None:
    for name, module in targets.items():
        set_mask(module, masks[name])


def make_permanent(targets: dict[str, nn.Module]) -> None:
    """Fold the masks into plain weights (zeros where pruned) and drop the hooks: call before saving."""
    for module in targets.values():
        if is_masked(module):
            prune.remove(module, "weight")


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of a model whose masks are attached. The pre-hook leaves `weight` as a non-leaf tensor after a
    forward pass with gradients, which `copy.deepcopy` refuses; it is recomputed without a graph first."""
    with torch.no_grad():
        for module in model.modules():
            if is_masked(module):
                module.weight = module.weight_orig * module.weight_mask
    return copy.deepcopy(model)


def prune_count(sparsity: float, numel: int) -> int:
    return int(round(sparsity * numel))


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Flat mask with exactly the k lowest-scored entries set to 0 (topk picks exactly k even among ties)."""
    mask = torch.ones(scores.numel(), dtype=torch.float32, device=scores.device)
    if k > 0:
        mask[torch.topk(scores.flatten(), k, largest=False, sorted=False).indices] = 0.0
    return mask


def select_masks(scores: dict[str, torch.Tensor], sparsity: float, scope: str = "global",
                 current: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Masks that prune exactly round(sparsity * n) of the lowest-scored weights (higher score = more important).

    scope "global": one ranking over all layers, n = all prunable weights; "layer": each layer ranked on its own,
    n = that layer's weights. Entries already pruned in `current` are ranked lowest so they stay pruned.
    """
    if scope not in SCOPES:
        raise BertliteError(f"Unknown pruning scope {scope!r}: use one of {', '.join(SCOPES)}.")
    if not 0.0 <= sparsity <= 1.0:
        raise BertliteError(f"Sparsity must be between 0 and 1 (a fraction of weights to remove); got {sparsity}.")
    ranked = {}
    for name, score in scores.items():
        score = torch.nan_to_num(score.detach().flatten().double(), nan=0.0)
        if current is not None:
            score = score.masked_fill(current[name].flatten().to(score.device) == 0, float("-inf"))
        ranked[name] = score
    shapes = {name: s.shape for name, s in scores.items()}
    if scope == "layer":
        return {name: _lowest(s, prune_count(sparsity, s.numel())).view(shapes[name]) for name, s in ranked.items()}
    # One ranking over every layer, on the device of the first (the GPU when the model is there: topk over
    # millions of scores, once per SynFlow iteration, is what dominates on a CPU).
    device = next(iter(ranked.values())).device if ranked else torch.device("cpu")
    flat = torch.cat([s.to(device) for s in ranked.values()])
    mask = _lowest(flat, prune_count(sparsity, flat.numel()))
    out, start = {}, 0
    for name, s in ranked.items():
        out[name] = mask[start:start + s.numel()].view(shapes[name]).to(s.device)
        start += s.numel()
    return out


def check_collapse(masks: dict[str, torch.Tensor], on_collapse: str = "error") -> list[str]:
    """Names of layers whose every weight would be pruned; raise or warn about them as asked.

    A fully pruned layer cuts the network in two (no signal passes through it): the model then predicts a constant.
    """
    if on_collapse not in COLLAPSE_ACTIONS:
        raise BertliteError(f"on_collapse must be one of {', '.join(COLLAPSE_ACTIONS)}; got {on_collapse!r}.")
    collapsed = [name for name, mask in masks.items() if int(mask.count_nonzero()) == 0]
    if collapsed and on_collapse != "ignore":
        message = (f"{len(collapsed)} layer(s) would be fully pruned (layer collapse): {', '.join(collapsed[:5])}"
                   f"{' ...' if len(collapsed) > 5 else ''}. Lower the sparsity, use scope 'layer', or use SynFlow, "
                   "which avoids layer collapse.")
        if on_collapse == "error":
            raise BertliteError(message)
        warnings.warn(message, stacklevel=2)
    return collapsed
