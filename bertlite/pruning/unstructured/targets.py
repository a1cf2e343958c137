"""Which weight matrices weight-level pruning acts on.

By default: every `nn.Linear` of the model's encoder (for BERT: query, key, value, attention output, intermediate
and output of every layer). Left dense unless asked:
- the embedding tables (`include_embeddings`): a lookup, whose zeros save no compute;
- the task head (`include_classifier`): the Linear layers outside the backbone (`classifier`) and the backbone's
  pooler, which only feeds the classifier. The head is tiny and sits right on the loss; and in all-MiniLM-L6-v2
  the pooler was never trained (sentence-transformers mean-pools), so its weights are ~10x smaller than the
  encoder's and a global magnitude ranking empties it completely from about 65% sparsity on.
Biases and LayerNorm parameters are never pruned (they are <1% of the weights).
"""

from __future__ import annotations

from torch import nn

from ...errors import BertliteError

HEAD_PARTS = ("pooler",)  # backbone submodules that belong to the task head


def backbone(model: nn.Module) -> nn.Module:
    """The model without its task head (`model.base_model` for Transformers models, the model itself otherwise)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def _in_head(name: str, in_backbone: bool) -> bool:
    return not in_backbone or any(part in HEAD_PARTS for part in name.split("."))


def find_targets(model: nn.Module, include_embeddings: bool = False, include_classifier: bool = False) -> dict[str, nn.Module]:
    """Prunable modules by qualified name, in definition order (the order SynFlow's chain follows)."""
    in_backbone = {id(m) for m in backbone(model).modules()}
    targets: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        inside = id(module) in in_backbone
        if isinstance(module, nn.Linear) and (include_classifier or not _in_head(name, inside)):
            targets[name] = module
        elif isinstance(module, nn.Embedding) and inside and include_embeddings:
            targets[name] = module
    if not targets:
        raise BertliteError(
            f"{type(model).__name__} has no prunable nn.Linear layers"
            + ("" if include_classifier else " outside its task head (pass include_classifier=True to prune the head)")
            + "."
        )
    return targets
