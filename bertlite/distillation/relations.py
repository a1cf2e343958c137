"""The query, key and value projections of one encoder layer, captured with forward hooks during a forward.

MiniLMv2's self-attention relations are built from them, and no Transformers model returns them: hooks work
with every attention implementation (SDPA included, which returns no attention maps) and under every engine,
because the hooked Linears run inside the wrapped model's own forward.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn

from ..errors import BertliteError

PROJECTIONS = ("query", "key", "value")


def self_attention_module(model: nn.Module, layer: int) -> nn.Module:
    """The self-attention block of encoder layer `layer` (1-based, as layer maps count) of a BERT-style model."""
    base = getattr(model, "base_model", model)
    try:
        module = base.encoder.layer[layer - 1].attention.self
    except (AttributeError, IndexError, TypeError):
        module = None
    if module is None or not all(isinstance(getattr(module, p, None), nn.Module) for p in PROJECTIONS):
        raise BertliteError(f"relation_weight needs a BERT-style encoder whose layer {layer} has query, key and value "
                            f"projections; {type(model).__name__} has none there.")
    return module


def check_relation_heads(heads: int, widths: dict[str, int]) -> None:
    """Relation heads split each model's queries, keys and values evenly: `heads` must divide every width."""
    for role, width in widths.items():
        if width % heads:
            raise BertliteError(f"relation_heads {heads} does not divide the {role}'s attention width {width}: choose "
                                "relation_heads that divides both models' widths (or 0 to choose it).")


@contextmanager
def capture_projections(module: nn.Module | None):
    """Yields a dict that the next forward through `module` fills with its query/key/value outputs (B, L, D); with
    no module (the relation loss is off) it stays empty."""
    captured: dict = {}
    if module is None:
        yield captured
        return

    def hook(name):
        def store(_module, _inputs, output):
            captured[name] = output
        return store

    handles = [getattr(module, name).register_forward_hook(hook(name)) for name in PROJECTIONS]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()
