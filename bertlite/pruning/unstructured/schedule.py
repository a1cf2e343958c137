"""Iterative pruning: an exponential sparsity schedule and the score -> mask -> (train) loop all methods share."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ...errors import BertliteError
from .masking import attach_masks, check_collapse, current_mask, select_masks

ScoreFn = Callable[[dict[str, nn.Module]], dict[str, torch.Tensor]]


def sparsity_schedule(sparsity: float, iterations: int) -> list[float]:
    """Sparsity after each of `iterations` steps, removing the same fraction of the remaining weights every step:
    density after step t is (1 - sparsity) ** (t / iterations). This is the exponential schedule of SynFlow
    (Tanaka et al. 2020) and the prune-p%-per-round schedule of iterative magnitude pruning / LTH."""
    if iterations < 1:
        raise BertliteError(f"The number of pruning iterations must be at least 1; got {iterations}.")
    if not 0.0 <= sparsity < 1.0:
        raise BertliteError(f"Sparsity must be in [0, 1) (1 would remove every weight); got {sparsity}.")
    steps = [1.0 - (1.0 - sparsity) ** (t / iterations) for t in range(1, iterations + 1)]
    steps[-1] = sparsity  # exact, free of floating-point drift
    return steps


def prune_iteratively(targets: dict[str, nn.Module], score_fn: ScoreFn, schedule: list[float], scope: str = "global",
                      between: Callable[[int, float], None] | None = None, on_collapse: str = "error",
                      desc: str = "Pruning") -> dict[str, torch.Tensor]:
    """For each sparsity in `schedule`: score the weights (with the current masks in force), mask the lowest-scored
    ones, and call `between(step, sparsity)` before the next step (retraining, rewinding). Masks stay attached.

    The collapse check runs before each mask is attached, so an error leaves the model as the previous step left it.
    """
    masks: dict[str, torch.Tensor] = {}
    for step, sparsity in enumerate(tqdm(schedule, desc=desc, disable=len(schedule) < 2, leave=False)):
        current = {name: current_mask(module) for name, module in targets.items()}
        masks = select_masks(score_fn(targets), sparsity, scope, current)
        check_collapse(masks, on_collapse)
        attach_masks(targets, masks)
        if between is not None and step < len(schedule) - 1:
            between(step, sparsity)
    return masks
