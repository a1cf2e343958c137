"""`prune_weights`: one entry point for the four weight-level methods, and `remove_masks` to make them permanent."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from ...errors import BertliteError, check_model
from .lottery import lottery_ticket
from .magnitude import magnitude_prune
from .masking import SCOPES, is_masked, make_permanent
from .obd import LossFn, obd_prune
from .report import SparsityReport, sparsity_report
from .synflow import DEFAULT_ITERATIONS as SYNFLOW_ITERATIONS
from .synflow import synflow_prune
from .targets import find_targets

METHODS = ("magnitude", "lth", "obd", "synflow")
DEFAULT_ITERATIONS = {"magnitude": 1, "lth": 3, "obd": 1, "synflow": SYNFLOW_ITERATIONS}


def validate(method: str, sparsity: float, scope: str, iterations: int) -> None:
    if method not in METHODS:
        raise BertliteError(f"Unknown weight pruning method {method!r}: choose from {', '.join(METHODS)}.")
    if not 0.0 <= sparsity < 1.0:
        raise BertliteError(f"Sparsity is the fraction of weights to remove, in [0, 1); got {sparsity}.")
    if scope not in SCOPES:
        raise BertliteError(f"Unknown scope {scope!r}: use 'global' (one ranking over all layers) or 'layer'.")
    if iterations < 1:
        raise BertliteError(f"iterations must be at least 1; got {iterations}.")


def prune_weights(model: nn.Module, method: str = "magnitude", sparsity: float = 0.5, *, scope: str = "global",
                  iterations: int | None = None, include_embeddings: bool = False, include_classifier: bool = False,
                  train_fn: Callable[[nn.Module], None] | None = None, data: Iterable | None = None,
                  loss_fn: LossFn | None = None, rewind_state: dict[str, torch.Tensor] | None = None,
                  on_collapse: str = "error") -> SparsityReport:
    """Prune `model`'s weights in place and return the per-layer sparsity report.

    method: "magnitude" (one-shot, or iterative with `train_fn` between rounds), "lth" (Lottery Ticket: needs
    `train_fn`; rewinds to `rewind_state`, default the weights on entry), "obd" (Optimal Brain Damage: needs `data`,
    re-iterable batches with labels), "synflow" (data-free). `iterations` defaults per method (magnitude 1, lth 3
    rounds, obd 1, synflow 100). The masks stay attached (pruned weights stay zero through further training);
    call `remove_masks(model)` before `save_pretrained`.
    """
    check_model(model, needs_config=False)
    iterations = iterations or DEFAULT_ITERATIONS.get(method, 1)
    validate(method, sparsity, scope, iterations)
    targets = find_targets(model, include_embeddings, include_classifier)
    common = dict(scope=scope, targets=targets, on_collapse=on_collapse)
    if method == "magnitude":
        if iterations > 1 and train_fn is None:
            raise BertliteError("Iterative magnitude pruning retrains between rounds and needs a train_fn (in the CLI: "
                                "--task); without retraining it selects exactly what one shot does (iterations=1).")
        magnitude_prune(model, sparsity, iterations=iterations, train_fn=train_fn, **common)
    elif method == "lth":
        if train_fn is None:
            raise BertliteError("The Lottery Ticket method retrains between rounds and needs a train_fn (in the CLI: --task).")
        lottery_ticket(model, sparsity, train_fn, rounds=iterations, rewind_state=rewind_state, **common)
    elif method == "obd":
        if data is None:
            raise BertliteError("Optimal Brain Damage estimates the Hessian from data and needs `data` (in the CLI: --task).")
        obd_prune(model, sparsity, data, loss_fn=loss_fn, iterations=iterations, **common)
    else:
        synflow_prune(model, sparsity, iterations=iterations, **common)
    return sparsity_report(model, targets, method, sparsity, scope)


def remove_masks(model: nn.Module) -> None:
    """Make every attached mask permanent: plain weights with zeros, loadable by plain transformers."""
    make_permanent({name: m for name, m in model.named_modules() if is_masked(m)})
