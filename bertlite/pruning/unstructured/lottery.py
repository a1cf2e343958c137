"""Lottery Ticket Hypothesis: iterative magnitude pruning with weight rewinding.

Frankle & Carbin (2019) train the network, prune the smallest-magnitude weights, reset the surviving weights to
their values at initialisation and retrain, round after round. Frankle et al. (2019, "Stabilizing the Lottery
Ticket Hypothesis") showed that for deeper networks resetting to an early point of training (step k) instead of
step 0 is what makes tickets work: that is `rewind_state`. For a pre-trained BERT the natural step 0 is the
pre-trained (or given fine-tuned) model itself (Chen et al. 2020, "The Lottery Ticket Hypothesis for Pre-trained
BERT Networks"), which is the default.

Training is a callback `train_fn(model)` that trains the masked model in place (the masks stay attached, so pruned
weights stay zero), which keeps the algorithm independent of the trainer and testable on tiny models.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .magnitude import magnitude_scores
from .masking import attach_masks, check_collapse, current_mask, select_masks
from .schedule import sparsity_schedule
from .targets import find_targets

ORIG_SUFFIX = "_orig"  # torch.nn.utils.prune renames a masked `weight` to `weight_orig`


def _canonical(name: str) -> str:
    return name[: -len(ORIG_SUFFIX)] if name.endswith(ORIG_SUFFIX) else name


@torch.no_grad()
def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter, named as in the unmasked model (so it survives masks being attached)."""
    return {_canonical(name): p.detach().clone() for name, p in model.named_parameters()}


@torch.no_grad()
def rewind(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Reset every parameter to `state`. Masks stay attached, so pruned weights remain zero."""
    for name, p in model.named_parameters():
        p.copy_(state[_canonical(name)].to(p.device))


def lottery_ticket(model: nn.Module, sparsity: float, train_fn: Callable[[nn.Module], None], *, rounds: int = 5,
                   scope: str = "global", rewind_state: dict[str, torch.Tensor] | None = None,
                   schedule: list[float] | None = None, train_final: bool = True,
                   on_ticket: Callable[[nn.Module, float], None] | None = None,
                   targets: dict[str, nn.Module] | None = None, on_collapse: str = "error") -> dict[str, torch.Tensor]:
    """Find a winning ticket at `sparsity` by iterative magnitude pruning with rewinding. Returns the final masks.

    train_fn(model) trains the model once (it runs `rounds + 1` times: the dense model, then each ticket but the
    last, and the last too when `train_final`). Each round prunes the trained weights to the next sparsity of the
    schedule (by default the same fraction of the remaining weights per round), then rewinds every parameter to
    `rewind_state` (default: the weights on entry, i.e. rewinding to step 0). `on_ticket(model, sparsity)` is called
    after each ticket has been trained (to evaluate every sparsity of one run).
    """
    targets = targets if targets is not None else find_targets(model)
    rewind_state = rewind_state if rewind_state is not None else snapshot(model)
    schedule = schedule if schedule is not None else sparsity_schedule(sparsity, rounds)
    train_fn(model)
    masks: dict[str, torch.Tensor] = {}
    for step, round_sparsity in enumerate(tqdm(schedule, desc="Lottery ticket rounds", leave=False)):
        current = {name: current_mask(module) for name, module in targets.items()}
        masks = select_masks(magnitude_scores(targets), round_sparsity, scope, current)
        check_collapse(masks, on_collapse)
        attach_masks(targets, masks)
        rewind(model, rewind_state)
        if step < len(schedule) - 1 or train_final:
            train_fn(model)
            if on_ticket is not None:
                on_ticket(model, round_sparsity)
    return masks
