"""Gates and importance criteria: shapes, gradients, and that the batched per-example trick is exact."""

from __future__ import annotations

import pytest
import torch
from structured_fixtures import FFN, HEADS, LAYERS, tiny_batches, tiny_classifier

from bertlite.errors import BertliteError
from bertlite.pruning.structured import UnitGates, compute_importance
from bertlite.pruning.structured import prune
from bertlite.pruning.structured.importance import magnitude_scores


@pytest.mark.parametrize("criterion", ["taylor", "fisher", "magnitude"])
def test_criteria_give_one_score_per_head_and_neuron(criterion):
    model = tiny_classifier()
    scores = compute_importance(model, tiny_batches(2), criterion, progress=False)
    assert [tuple(s.shape) for s in scores.heads] == [(HEADS,)] * LAYERS
    assert [tuple(s.shape) for s in scores.ffn] == [(FFN,)] * LAYERS
    for s in [*scores.heads, *scores.ffn]:
        assert torch.isfinite(s).all() and (s >= 0).all() and s.sum() > 0
        torch.testing.assert_close(s.norm(), torch.tensor(1.0))  # normalised per layer


def test_gates_get_gradients_that_match_finite_differences():
    model = tiny_classifier().double()
    batch = tiny_batches(1)[0]
    gates = UnitGates(model, requires_grad=True)
    with gates:
        model(**batch).loss.backward()
        analytic_head = gates.heads[1].grad[2].item()
        analytic_neuron = gates.ffn[0].grad[5].item()
        assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in [*gates.heads, *gates.ffn])

        def loss_with(gate, index, value):
            with torch.no_grad():
                old = gate[index].item()
                gate[index] = value
                loss = model(**batch).loss.item()
                gate[index] = old
            return loss

        eps = 2.0**-10  # exact in the float32 gates
        numeric_head = (loss_with(gates.heads[1], 2, 1 + eps) - loss_with(gates.heads[1], 2, 1 - eps)) / (2 * eps)
        numeric_neuron = (loss_with(gates.ffn[0], 5, 1 + eps) - loss_with(gates.ffn[0], 5, 1 - eps)) / (2 * eps)
    assert analytic_head == pytest.approx(numeric_head, rel=1e-4, abs=1e-9)
    assert analytic_neuron == pytest.approx(numeric_neuron, rel=1e-4, abs=1e-9)
    assert not gates.attached


@pytest.mark.parametrize("criterion", ["taylor", "fisher"])
def test_batched_scores_equal_scores_from_one_example_at_a_time(criterion):
    """Michel et al. average |dL(x)/dg| over examples x: the batched per-example gradients must give exactly that."""
    model = tiny_classifier()
    batch = tiny_batches(1, batch=4, pad=False)[0]
    batched = compute_importance(model, [batch], criterion, normalize=False, progress=False)
    singles = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(4)]
    one_by_one = compute_importance(model, singles, criterion, normalize=False, progress=False)
    for a, b in zip([*batched.heads, *batched.ffn], [*one_by_one.heads, *one_by_one.ffn]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)


def test_magnitude_is_the_norm_of_the_weights_a_unit_owns():
    model = tiny_classifier()
    layer = model.bert.encoder.layer[1]
    size = 32 // HEADS
    h = 3
    rows = slice(h * size, (h + 1) * size)
    attn = layer.attention.self
    expected_head = torch.sqrt(sum(lin.weight[rows].pow(2).sum() for lin in (attn.query, attn.key, attn.value))
                               + layer.attention.output.dense.weight[:, rows].pow(2).sum())
    expected_neuron = torch.sqrt(layer.intermediate.dense.weight[7].pow(2).sum() + layer.output.dense.weight[:, 7].pow(2).sum())
    raw = magnitude_scores(model)
    torch.testing.assert_close(raw.heads[1][h], expected_head.detach())
    torch.testing.assert_close(raw.ffn[1][7], expected_neuron.detach())


def test_importance_leaves_the_model_as_it_was():
    model = tiny_classifier().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compute_importance(model, tiny_batches(1), "taylor", progress=False)
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.bert.encoder.layer[0].intermediate._forward_hooks


def test_data_criteria_need_data():
    with pytest.raises(BertliteError, match="needs data"):
        compute_importance(tiny_classifier(), None, "taylor")
    with pytest.raises(BertliteError, match="Unknown importance criterion"):
        compute_importance(tiny_classifier(), None, "random")


def test_prune_api_removes_the_least_important_units():
    model = tiny_classifier()
    result = prune(model, heads=0.5, ffn=0.25, criterion="taylor", batches=tiny_batches(2), progress=False)
    assert result.plan.num_heads == 6 and result.plan.num_neurons == 48
    assert sum(s.heads for s in result.shapes_after) == 6
    assert all(s.heads >= 1 for s in result.shapes_after)
    for layer, removed in result.plan.heads.items():  # every removed head scored below every kept head of its layer
        kept = [i for i in range(HEADS) if i not in removed]
        assert max(result.scores.heads[layer][removed]) <= min(result.scores.heads[layer][kept])
    with pytest.raises(BertliteError, match="Nothing to prune"):
        prune(model, criterion="magnitude")
