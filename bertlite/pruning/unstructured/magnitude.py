"""Magnitude pruning: remove the weights of smallest absolute value, in one shot or over several rounds.

Iterative magnitude pruning only differs from one-shot when the model is retrained between rounds (`train_fn`):
without training the weights do not move, and every round would pick the same weights one shot picks.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .masking import effective_weight
from .schedule import prune_iteratively, sparsity_schedule
from .targets import find_targets


def magnitude_scores(targets: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {name: effective_weight(module).abs() for name, module in targets.items()}


def magnitude_prune(model: nn.Module, sparsity: float, *, scope: str = "global", iterations: int = 1,
                    train_fn: Callable[[nn.Module], None] | None = None, targets: dict[str, nn.Module] | None = None,
                    on_collapse: str = "error") -> dict[str, torch.Tensor]:
    """Mask the `sparsity` fraction of smallest-magnitude weights (layer-wise or global). Returns the masks, which
    stay attached to the model.

    With `iterations` > 1 the sparsity grows exponentially over the rounds and `train_fn(model)` retrains the masked
    model between rounds (gradual magnitude pruning); pruned weights stay at zero while it trains.
    """
    targets = targets if targets is not None else find_targets(model)
    between = (lambda step, s: train_fn(model)) if train_fn is not None else None
    return prune_iteratively(targets, magnitude_scores, sparsity_schedule(sparsity, iterations), scope, between,
                             on_collapse, desc="Magnitude pruning")
