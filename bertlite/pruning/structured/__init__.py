"""Structured pruning: remove attention heads and FFN neurons so that BERT models get physically smaller and faster.

Pruned models are of the `bertlite` model type (bertlite.modeling: per-layer head counts and FFN widths), registered
with transformers' Auto classes when this package is used. The names below load on first use.
"""

import importlib

_EXPORTS = {
    "LayerShape": "gates",
    "UnitGates": "gates",
    "layer_shapes": "gates",
    "CRITERIA": "importance",
    "ImportanceAccumulator": "importance",
    "UnitScores": "importance",
    "compute_importance": "importance",
    "PruningPlan": "selection",
    "plan_pruning": "selection",
    "describe_shapes": "surgery",
    "prune_gated": "surgery",
    "prune_model": "surgery",
    "PruneResult": "api",
    "check_feasible": "api",
    "prune": "api",
    "GradualPruningCallback": "callback",
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Registration first: a Bertlite class in use must also be known to the Auto classes (and saved with its code).
    from ... import modeling  # noqa: F401  (importing registers)
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
