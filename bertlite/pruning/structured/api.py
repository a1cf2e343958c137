"""`prune()`: one-shot structured pruning of an in-memory model (importance -> plan -> surgery)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import BertliteError, check_model
from .gates import LayerShape, layer_shapes
from .importance import DATA_CRITERIA, UnitScores, compute_importance
from .selection import PruningPlan, check_target, plan_pruning
from .surgery import prune_model


@dataclass
class PruneResult:
    model: nn.Module  # the smaller Bertlite model
    plan: PruningPlan  # what was removed (indices in the input model's numbering)
    scores: UnitScores  # the importance scores the plan was made from
    shapes_before: list[LayerShape]
    shapes_after: list[LayerShape]


def check_feasible(model: nn.Module, *, heads=None, ffn=None, scope: str = "global", min_heads_per_layer: int = 1,
                   min_ffn_per_layer: int | None = None) -> None:
    """Raise the error a target would raise, before any scoring or training is spent on it (targets against the
    model's sizes, and the per-layer guard)."""
    shapes = layer_shapes(model)
    placeholder = UnitScores(heads=[torch.zeros(s.heads) for s in shapes], ffn=[torch.zeros(s.ffn) for s in shapes],
                             criterion="magnitude")
    plan_pruning(placeholder, heads=heads, ffn=ffn, scope=scope, min_heads_per_layer=min_heads_per_layer,
                 min_ffn_per_layer=min_ffn_per_layer, config=model.config)


def prune(model: nn.Module, *, heads: float | int | None = None, ffn: float | int | None = None,
          criterion: str = "taylor", scope: str = "global", batches: Iterable[dict] | None = None,
          loss_fn: Callable[[nn.Module, dict], torch.Tensor] | None = None, max_batches: int | None = None,
          min_heads_per_layer: int = 1, min_ffn_per_layer: int | None = None, normalize: bool = True,
          progress: bool = True) -> PruneResult:
    """Remove the least important `heads` and `ffn` neurons of a BERT/Bertlite model.

    Targets are a fraction of the model's current units (0 <= x < 1) or a whole count (>= 1). `batches` (dicts of
    model inputs, with labels when available) are needed for the taylor and fisher criteria. The input model is not
    modified; the returned `PruneResult.model` is a new, smaller Bertlite model.
    """
    check_model(model)
    check_target(heads, "heads")
    check_target(ffn, "ffn")
    if not heads and not ffn:
        raise BertliteError("Nothing to prune: give a heads and/or ffn target (a fraction below 1 or a whole count).")
    if criterion in DATA_CRITERIA and batches is None:
        raise BertliteError(f"criterion={criterion!r} needs batches of data; pass batches=... or use criterion='magnitude'.")
    guard = dict(scope=scope, min_heads_per_layer=min_heads_per_layer, min_ffn_per_layer=min_ffn_per_layer)
    check_feasible(model, heads=heads, ffn=ffn, **guard)
    before = layer_shapes(model)
    scores = compute_importance(model, batches, criterion, loss_fn=loss_fn, max_batches=max_batches,
                                normalize=normalize, progress=progress)
    plan = plan_pruning(scores, heads=heads, ffn=ffn, config=model.config, **guard)
    pruned = prune_model(model, plan)
    return PruneResult(model=pruned, plan=plan, scores=scores, shapes_before=before, shapes_after=layer_shapes(pruned))
