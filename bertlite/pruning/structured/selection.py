"""Choosing which heads and FFN neurons to remove: targets, ranking (global or per layer), and the collapse guard.

A target is either a fraction of the units the model has now (0 <= x < 1) or a whole count (x >= 1): `0.5` removes
half of the heads, `6` removes six heads. Units with the lowest importance go first. Every layer keeps at least
`min_heads_per_layer` heads (default 1) and `min_ffn_per_layer` neurons (default 1/16 of the unpruned FFN width), so
pruning cannot silently disconnect a layer; 0 allows removing whole attention or FFN blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ...errors import BertliteError
from .importance import UnitScores

SCOPES = ("global", "layer")
# Default share of a layer's unpruned FFN width that always stays.
DEFAULT_MIN_FFN_SHARE = 1 / 16


@dataclass
class PruningPlan:
    """Units to remove, per layer, as indices into the model's current heads / neurons."""

    heads: dict[int, list[int]] = field(default_factory=dict)
    ffn: dict[int, list[int]] = field(default_factory=dict)

    @property
    def num_heads(self) -> int:
        return sum(len(v) for v in self.heads.values())

    @property
    def num_neurons(self) -> int:
        return sum(len(v) for v in self.ffn.values())

    def to_dict(self) -> dict:
        return {"heads": {str(k): v for k, v in self.heads.items() if v},
                "ffn": {str(k): v for k, v in self.ffn.items() if v}}


def check_target(value: float | int | None, option: str = "target") -> None:
    """Reject values that are neither a fraction in [0, 1) nor a whole count >= 1 (independent of the model)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BertliteError(f"{option} must be a number (a fraction below 1 or a whole count), got {value!r}.")
    if value < 0:
        raise BertliteError(f"{option} must be >= 0 (a fraction below 1, or a whole count), got {value}.")
    if value >= 1 and not isinstance(value, int):  # 2.5 means nothing, and 1.0 could be read either way
        raise BertliteError(f"{option}={value} is neither a fraction (0 <= x < 1) nor a whole count: give a count as an "
                            f"integer (e.g. {int(value)}) or a fraction below 1 (e.g. 0.25).")


def resolve_target(value: float | int | None, total: int, unit: str, option: str = "target") -> int:
    """How many of `total` units a target means."""
    check_target(value, option)
    if value is None or value == 0:
        return 0
    if value < 1:
        return int(round(value * total))
    count = int(value)
    if count > total:
        raise BertliteError(f"{option}={count} asks to remove more {unit} than the model has ({total}).")
    return count


def _allocate_per_layer(total_remove: int, sizes: list[int], caps: list[int]) -> list[int]:
    """Split a count over layers in proportion to their sizes (largest remainder), never above a layer's cap."""
    total = sum(sizes)
    exact = [total_remove * s / total if total else 0.0 for s in sizes]
    quotas = [min(math.floor(e), c) for e, c in zip(exact, caps)]
    # Hand out what is left one unit at a time, to layers with room, largest remainder first.
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    left = total_remove - sum(quotas)
    while left > 0:
        progressed = False
        for i in order:
            if left and quotas[i] < caps[i]:
                quotas[i] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return quotas


def select_units(scores: list[torch.Tensor], count: int, scope: str, min_keep: list[int], unit: str,
                 already_removed: dict[int, list[int]] | None = None, guard_hint: str = "") -> dict[int, list[int]]:
    """Indices to remove per layer so that `count` units in total are removed (including `already_removed`).

    global: the lowest scores across all layers go first; per layer ("layer"): every layer loses the same share.
    A layer never drops below `min_keep[layer]` units.
    """
    if scope not in SCOPES:
        raise BertliteError(f"Unknown ranking scope {scope!r}: choose 'global' or 'layer'.")
    already_removed = already_removed or {}
    sizes = [s.numel() for s in scores]
    floors = [min(m, n) for m, n in zip(min_keep, sizes)]  # a layer already below the minimum just keeps what it has
    caps = [n - f for n, f in zip(sizes, floors)]
    if count > sum(caps):
        raise BertliteError(
            f"Cannot remove {count} {unit} while keeping at least {max(min_keep)} per layer: at most {sum(caps)} can go. "
            f"Lower the target{guard_hint}.")
    ranked = []
    for layer, layer_scores in enumerate(scores):
        values = layer_scores.float().clone()
        gone = already_removed.get(layer, [])
        if gone:
            values[gone] = -math.inf  # removed units stay removed and count toward the target
        ranked.append(values)
    removed: dict[int, list[int]] = {}
    if scope == "global":
        candidates = sorted((float(v), layer, idx) for layer, values in enumerate(ranked) for idx, v in enumerate(values.tolist()))
        left = list(caps)
        for _, layer, idx in candidates:
            if count == 0:
                break
            if left[layer] > 0:
                removed.setdefault(layer, []).append(idx)
                left[layer] -= 1
                count -= 1
    else:
        quotas = _allocate_per_layer(count, sizes, caps)
        for layer, (values, quota) in enumerate(zip(ranked, quotas)):
            quota = max(quota, len(already_removed.get(layer, [])))
            if quota:
                removed[layer] = torch.argsort(values, stable=True)[:quota].tolist()
    return {layer: sorted(idx) for layer, idx in sorted(removed.items())}


def default_min_ffn(config) -> int:
    return max(1, math.ceil(config.intermediate_size * DEFAULT_MIN_FFN_SHARE))


def plan_pruning(scores: UnitScores, *, heads: float | int | None = None, ffn: float | int | None = None,
                 scope: str = "global", min_heads_per_layer: int = 1, min_ffn_per_layer: int | None = None,
                 config=None, already_removed: PruningPlan | None = None) -> PruningPlan:
    """Turn importance scores and targets into a `PruningPlan`.

    `heads` / `ffn`: fraction (0 <= x < 1) or whole count of the model's current heads / FFN neurons to remove.
    `config` (the model's config) sets the default `min_ffn_per_layer`; without it the default is 1.
    """
    if min_heads_per_layer < 0 or (min_ffn_per_layer is not None and min_ffn_per_layer < 0):
        raise BertliteError("min_heads_per_layer and min_ffn_per_layer must be >= 0.")
    if min_ffn_per_layer is None:
        min_ffn_per_layer = default_min_ffn(config) if config is not None else 1
    already_removed = already_removed or PruningPlan()
    num_layers = len(scores.heads)
    head_count = resolve_target(heads, sum(s.numel() for s in scores.heads), "attention heads", "heads")
    ffn_count = resolve_target(ffn, sum(s.numel() for s in scores.ffn), "FFN neurons", "ffn")
    plan = PruningPlan()
    plan.heads = select_units(scores.heads, head_count, scope, [min_heads_per_layer] * num_layers, "attention heads",
                              already_removed.heads, guard_hint=", or pass min_heads_per_layer=0 (--min_heads_per_layer 0) "
                              "to allow removing whole attention blocks")
    plan.ffn = select_units(scores.ffn, ffn_count, scope, [min_ffn_per_layer] * num_layers, "FFN neurons",
                            already_removed.ffn, guard_hint=", or lower min_ffn_per_layer (--min_ffn_per_layer; 0 allows "
                            "removing whole FFN blocks)")
    return plan
