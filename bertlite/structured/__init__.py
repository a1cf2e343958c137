"""Structured pruning: remove attention heads and FFN neurons so that BERT models get physically smaller and faster.

Importing this package registers `model_type: "bertlite"` (per-layer head counts and FFN widths) with transformers'
Auto classes, so pruned folders load with `AutoModelForSequenceClassification.from_pretrained(path)`.
"""

from .configuration_bertlite import BertliteConfig
from .modeling_bertlite import (
    BertliteForMaskedLM,
    BertliteForMultipleChoice,
    BertliteForQuestionAnswering,
    BertliteForSequenceClassification,
    BertliteForTokenClassification,
    BertliteModel,
)
from .registration import register_auto_classes

register_auto_classes()

from .gates import LayerShape, UnitGates, layer_shapes  # noqa: E402
from .importance import CRITERIA, ImportanceAccumulator, UnitScores, compute_importance  # noqa: E402
from .selection import PruningPlan, plan_pruning  # noqa: E402
from .surgery import describe_shapes, prune_gated, prune_model  # noqa: E402
from .api import PruneResult, check_feasible, prune  # noqa: E402

# GradualPruningCallback lives in bertlite.structured.callback (it imports transformers' Trainer machinery).

__all__ = [
    "CRITERIA",
    "BertliteConfig",
    "BertliteForMaskedLM",
    "BertliteForMultipleChoice",
    "BertliteForQuestionAnswering",
    "BertliteForSequenceClassification",
    "BertliteForTokenClassification",
    "BertliteModel",
    "ImportanceAccumulator",
    "LayerShape",
    "PruneResult",
    "PruningPlan",
    "UnitGates",
    "UnitScores",
    "check_feasible",
    "compute_importance",
    "describe_shapes",
    "layer_shapes",
    "plan_pruning",
    "prune",
    "prune_gated",
    "prune_model",
]
