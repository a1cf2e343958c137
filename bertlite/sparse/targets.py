"""Which weight matrices weight-level pruning acts on.

By default: every `nn.Linear` of the model's backbone (for BERT: query, key, value, attention output, intermediate,
output of every layer, and the pooler). The embedding tables and the task head (the Linear layers outside the
backbone, e.g. `classifier`) are left dense unless asked: the embeddings are a lookup (their sparsity saves no
compute) and the head is tiny and sits right on the loss, so pruning it costs accuracy for nothing.
Biases and LayerNorm parameters are never pruned (they are <1% of the weights).
"""

from __future__ import annotations

from torch import nn

from ..errors import BertliteError


def backbone(model: nn.Module) -> nn.Module:
    """The model without its task head (`model.base_model` for Transformers models, the model itself otherwise)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def find_targets(model: nn.Module, include_embeddings: bool = False, include_classifier: bool = False) -> dict[str, nn.Module]:
    """Prunable modules by qualified name, in definition order (the order SynFlow's chain follows)."""
    in_backbone = {id(m) for m in backbone(model).modules()}
    targets: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        inside = id(module) in in_backbone
        if isinstance(module, nn.Linear) and (inside or include_classifier):
            targets[name] = module
        elif isinstance(module, nn.Embedding) and inside and include_embeddings:
            targets[name] = module
    if not targets:
        raise BertliteError(
            f"{type(model).__name__} has no prunable nn.Linear layers"
            + ("" if include_classifier else " in its backbone (pass include_classifier=True to prune the head)")
            + "."
        )
    return targets
