"""Targets, ranking and the layer-collapse guard."""

from __future__ import annotations

import math

import pytest
import torch

from bertlite.errors import BertliteError
from bertlite.pruning.structured import PruningPlan, UnitScores, plan_pruning
from bertlite.pruning.structured.selection import resolve_target, select_units


def scores(head_rows, ffn_rows=None) -> UnitScores:
    heads = [torch.tensor(r, dtype=torch.float) for r in head_rows]
    ffn = [torch.tensor(r, dtype=torch.float) for r in (ffn_rows or [[1.0] * 8 for _ in head_rows])]
    return UnitScores(heads=heads, ffn=ffn, criterion="taylor")


def test_targets_are_fractions_or_whole_counts():
    assert resolve_target(0.5, 24, "heads") == 12
    assert resolve_target(0.0, 24, "heads") == 0
    assert resolve_target(None, 24, "heads") == 0
    assert resolve_target(6, 24, "heads") == 6
    assert resolve_target(1, 24, "heads") == 1  # 1 is a count: one head
    assert resolve_target(24, 24, "heads") == 24


@pytest.mark.parametrize("value, message", [
    (-0.1, ">= 0"), (-3, ">= 0"), (1.5, "neither a fraction"), (25, "more attention heads than the model has"),
    (math.nan, "must be a number"), ("0.5", "must be a number"),
])
def test_bad_targets_give_clear_errors(value, message):
    with pytest.raises(BertliteError, match=message):
        resolve_target(value, 24, "attention heads", "heads")


def test_global_ranking_removes_lowest_scores_across_layers():
    s = scores([[0.9, 0.1, 0.8, 0.7], [0.2, 0.95, 0.3, 0.85]])
    plan = plan_pruning(s, heads=3, scope="global")
    assert plan.heads == {0: [1], 1: [0, 2]}


def test_per_layer_ranking_removes_the_same_share_everywhere():
    s = scores([[0.9, 0.1, 0.8, 0.7], [0.2, 0.95, 0.3, 0.85], [0.5, 0.4, 0.6, 0.3]])
    plan = plan_pruning(s, heads=0.5, scope="layer")
    assert plan.heads == {0: [1, 3], 1: [0, 2], 2: [1, 3]}
    plan = plan_pruning(s, heads=4, scope="layer")  # 4 over 3 equal layers: 2 + 1 + 1, still the lowest per layer
    assert sorted(len(v) for v in plan.heads.values()) == [1, 1, 2] and plan.num_heads == 4


def test_a_layer_cannot_be_emptied_unless_asked():
    # Layer 0's heads are all the least important: a global ranking would take all four.
    s = scores([[0.01, 0.02, 0.03, 0.04], [0.5, 0.6, 0.7, 0.8]])
    plan = plan_pruning(s, heads=5, scope="global")
    assert plan.heads == {0: [0, 1, 2], 1: [0, 1]}  # layer 0 keeps its best head; the rest comes from layer 1
    emptied = plan_pruning(s, heads=5, scope="global", min_heads_per_layer=0)
    assert emptied.heads == {0: [0, 1, 2, 3], 1: [0]}
    with pytest.raises(BertliteError, match="min_heads_per_layer=0"):
        plan_pruning(s, heads=7, scope="global")  # 8 heads, 2 layers, 1 must stay in each
    with pytest.raises(BertliteError, match="at most 6 can go"):
        plan_pruning(s, heads=0.99, scope="layer")


def test_ffn_guard_defaults_to_a_sixteenth_of_the_unpruned_width():
    from transformers import BertConfig

    config = BertConfig(intermediate_size=64)
    s = scores([[1.0]], [list(range(64))])
    plan = plan_pruning(s, ffn=60, config=config)  # 64/16 = 4 neurons must stay
    assert plan.ffn[0] == list(range(60))
    with pytest.raises(BertliteError, match="keeping at least 4 per layer"):
        plan_pruning(s, ffn=0.99, config=config)
    assert plan_pruning(s, ffn=64, config=config, min_ffn_per_layer=0).num_neurons == 64


def test_already_removed_units_stay_removed_and_count_toward_the_target():
    s = scores([[0.1, 0.9, 0.8, 0.7], [0.2, 0.6, 0.3, 0.5]])
    already = PruningPlan(heads={0: [2]})  # a high-scoring head removed earlier
    plan = plan_pruning(s, heads=3, already_removed=already)
    assert plan.heads == {0: [0, 2], 1: [0]}


def test_select_units_rejects_unknown_scope():
    with pytest.raises(BertliteError, match="scope"):
        select_units([torch.ones(4)], 1, "everywhere", [1], "heads")
