"""Weight-level (unstructured) pruning: magnitude, Lottery Ticket, Optimal Brain Damage, SynFlow.

Masks are attached with `torch.nn.utils.prune` and stay in force during further training; `remove_masks` makes them
permanent before saving. Unstructured zeros shrink nothing and speed nothing up by themselves (dense kernels multiply
the zeros too); see docs/weight_pruning.md.
"""

from .api import DEFAULT_ITERATIONS, METHODS, prune_weights, remove_masks
from .lottery import lottery_ticket, rewind, snapshot
from .magnitude import magnitude_prune, magnitude_scores
from .masking import check_collapse, copy_model, make_permanent, select_masks, set_mask
from .obd import fisher_diagonal, obd_prune, obd_saliency
from .report import SparsityReport, sparsity_report
from .schedule import prune_iteratively, sparsity_schedule
from .synflow import synflow_prune, synflow_scores
from .targets import find_targets

__all__ = [
    "DEFAULT_ITERATIONS", "METHODS", "SparsityReport", "check_collapse", "cli_run", "copy_model", "find_targets", "fisher_diagonal",
    "lottery_ticket", "magnitude_prune", "magnitude_scores", "make_permanent", "obd_prune", "obd_saliency",
    "prune_iteratively", "prune_weights", "remove_masks", "rewind", "select_masks", "set_mask", "snapshot",
    "sparsity_report", "sparsity_schedule", "synflow_prune", "synflow_scores",
]


def cli_run(args) -> int:
    """Run `bertlite prune --method magnitude|lth|obd|synflow` with the prune command's parsed arguments."""
    from .command import run

    return run(args)
