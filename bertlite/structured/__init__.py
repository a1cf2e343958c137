"""Structured pruning: remove attention heads and FFN neurons so that BERT models get physically smaller and faster.

`model_type: "bertlite"` (per-layer head counts and FFN widths) is registered with transformers' Auto classes at
`import bertlite` (see `autoregister`), so pruned folders load with `AutoModelForSequenceClassification.from_pretrained`.
The names below load on first use: importing this package costs nothing until then.
"""

import importlib

_EXPORTS = {
    "BertliteConfig": "configuration_bertlite",
    "BertliteModel": "modeling_bertlite",
    "BertliteForSequenceClassification": "modeling_bertlite",
    "BertliteForTokenClassification": "modeling_bertlite",
    "BertliteForQuestionAnswering": "modeling_bertlite",
    "BertliteForMaskedLM": "modeling_bertlite",
    "BertliteForMultipleChoice": "modeling_bertlite",
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
    importlib.import_module(f"{__name__}.registration")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
