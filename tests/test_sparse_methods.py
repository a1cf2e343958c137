"""The four methods on tiny networks where the right answer is known."""

import pytest
import torch
from sparse_utils import random_batch, sgd_train_fn, tiny_bert
from torch import nn

from bertlite import BertliteError
from bertlite.pruning.unstructured import (
    find_targets, fisher_diagonal, lottery_ticket, magnitude_prune, obd_prune, obd_saliency, select_masks, snapshot,
    synflow_prune, synflow_scores,
)
from bertlite.pruning.unstructured.masking import effective_weight

# ---------------------------------------------------------------- Lottery Ticket


def test_lth_rewinds_unpruned_weights_to_the_early_checkpoint():
    model = tiny_bert()
    batch = random_batch(1)
    train = sgd_train_fn(batch, steps=2)
    train(model)  # "k steps" of training: the early checkpoint of Frankle et al. (2019)
    early = snapshot(model)
    trained = {}

    def train_and_record(m):
        train(m)
        trained.update({name: effective_weight(t).clone() for name, t in find_targets(m).items()})

    masks = lottery_ticket(model, 0.6, train_and_record, rounds=1, train_final=False)
    targets = find_targets(model)
    # The mask is chosen on the weights *after* training ...
    assert all(torch.equal(masks[n], m) for n, m in select_masks({n: w.abs() for n, w in trained.items()}, 0.6).items())
    # ... and the surviving weights are the early checkpoint's, not the trained ones.
    for name, module in targets.items():
        kept = masks[name] == 1
        weight = effective_weight(module)
        assert torch.equal(weight[kept], early[f"{name}.weight"][kept])
        assert torch.all(weight[~kept] == 0)
        assert not torch.equal(weight[kept], trained[name][kept])
    for name, p in model.named_parameters():  # every other parameter is rewound too
        if not name.endswith("weight_orig"):
            assert torch.equal(p, early[name]), name


def test_lth_rounds_follow_the_schedule_and_train_each_ticket():
    model = tiny_bert()
    seen = []
    calls = []

    def train(m):
        calls.append(1)
        sgd_train_fn(random_batch(len(calls)), steps=1)(m)

    def on_ticket(m, sparsity):
        counts = [int((effective_weight(t) == 0).sum()) for t in find_targets(m).values()]
        seen.append((sparsity, sum(counts)))

    lottery_ticket(model, 0.0, train, schedule=[0.5, 0.8, 0.9], on_ticket=on_ticket)
    total = sum(t.weight.numel() for t in find_targets(model).values())
    assert len(calls) == 4  # dense model + one training per ticket
    assert seen == [(s, round(s * total)) for s in (0.5, 0.8, 0.9)]


# ---------------------------------------------------------------- Optimal Brain Damage


def _linear_problem():
    """y = x.w with unit residuals: the empirical Fisher of 1/2 (x.w - y)^2 equals the Hessian diag mean(x_j^2)."""
    torch.manual_seed(0)
    n, d = 64, 6
    scales = torch.tensor([10.0, 0.1, 1.0, 3.0, 0.3, 1.0])
    x = torch.randn(n, d, dtype=torch.float64) * scales
    weights = torch.tensor([[0.08, 2.0, 0.5, 0.2, 1.5, 0.8]], dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(weights)
    signs = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double()
    y = (x @ weights.T).squeeze(1) - signs  # residual x.w - y = +-1 for every sample
    per_sample = [(x[i:i + 1], y[i:i + 1]) for i in range(n)]
    return model, x, y, per_sample


def _half_squared_error(model, batch):
    inputs, targets = batch
    return 0.5 * ((model(inputs).squeeze(1) - targets) ** 2).sum()


def test_obd_ranks_by_half_hessian_times_weight_squared():
    model, x, y, per_sample = _linear_problem()
    targets = {"linear": model}
    fisher = fisher_diagonal(model, targets, per_sample, _half_squared_error)["linear"]
    hessian = torch.autograd.functional.hessian(
        lambda w: 0.5 * ((x @ w - y) ** 2).mean(), model.weight.detach().squeeze(0).clone())
    assert torch.allclose(fisher.squeeze(0), torch.diagonal(hessian), rtol=1e-10)
    expected = 0.5 * torch.diagonal(hessian) * model.weight.detach().squeeze(0) ** 2
    saliency = obd_saliency(targets, {"linear": fisher})["linear"].squeeze(0)
    assert torch.allclose(saliency, expected, rtol=1e-10)

    masks = obd_prune(model, 0.5, per_sample, loss_fn=_half_squared_error, targets=targets)
    pruned = set(torch.nonzero(masks["linear"].squeeze(0) == 0).flatten().tolist())
    assert pruned == set(torch.argsort(expected)[:3].tolist())
    # The problem is built so that OBD disagrees with magnitude: the smallest weight sits on the widest feature.
    assert pruned != set(torch.argsort(model.weight_orig.detach().abs().squeeze(0))[:3].tolist())
    assert 0 not in pruned


def test_obd_on_a_transformer_uses_the_model_loss():
    model = tiny_bert()
    batch = random_batch(2)
    per_sample = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(4)]
    targets = find_targets(model)
    fisher = fisher_diagonal(model, targets, per_sample)
    name = "bert.encoder.layer.0.intermediate.dense"
    manual = torch.zeros_like(targets[name].weight, dtype=torch.float64)
    for sample in per_sample:
        grad, = torch.autograd.grad(model(**sample).loss, targets[name].weight)
        manual += grad.double() ** 2
    assert torch.allclose(fisher[name], manual / 4)
    assert not model.training


# ---------------------------------------------------------------- SynFlow


def _mlp_with_a_weak_small_layer() -> nn.Sequential:
    """Layers of very different sizes; the small last layer has the smallest weights, so a global magnitude
    ranking removes all of it long before the big layers run out."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4))
    with torch.no_grad():
        model[4].weight.mul_(0.01)
    return model


def test_synflow_scores_match_the_closed_form_of_a_linear_chain():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 3, bias=False))
    w1, w2 = model[0].weight.detach().double().abs(), model[2].weight.detach().double().abs()
    # R = 1^T |W2| |W1| 1 ; dR/dW1_ij = (1^T |W2|)_i ; dR/dW2_ki = (|W1| 1)_i
    expected = {"0": w1 * w2.sum(0)[:, None], "2": w2 * w1.sum(1)[None, :]}
    scores = synflow_scores(find_targets(model))
    scale = scores["0"].sum() / expected["0"].sum()  # scores are known up to one constant factor
    for name in ("0", "2"):
        assert torch.allclose(scores[name], scale * expected[name], rtol=1e-10)
    assert torch.allclose(scores["0"].sum(), scores["2"].sum(), rtol=1e-10)  # conservation of synaptic flow


def test_synflow_does_not_depend_on_any_input_data():
    runs = []
    for seed in (1, 2):
        model = _mlp_with_a_weak_small_layer()
        calls = []
        model.register_forward_hook(lambda *args: calls.append(1))
        torch.manual_seed(seed)  # a different random state must change nothing
        runs.append(synflow_prune(model, 0.9, iterations=20))
        assert calls == []  # no data ever goes through the network
    assert all(torch.equal(runs[0][name], runs[1][name]) for name in runs[0])


def test_synflow_avoids_the_layer_collapse_of_global_magnitude():
    sparsity = 0.995
    magnitude_model = _mlp_with_a_weak_small_layer()
    with pytest.raises(BertliteError, match="layer collapse"):
        magnitude_prune(magnitude_model, sparsity)
    masks = magnitude_prune(magnitude_model, sparsity, on_collapse="ignore")
    assert int(masks["4"].sum()) == 0  # global magnitude empties the last layer: the network outputs a constant
    one_shot = synflow_prune(_mlp_with_a_weak_small_layer(), sparsity, iterations=1, on_collapse="ignore")
    assert int(one_shot["0"].sum()) == 0  # single-shot SynFlow collapses too (the other way): iterating matters

    synflow_model = _mlp_with_a_weak_small_layer()
    masks = synflow_prune(synflow_model, sparsity)  # raises if any layer collapses
    total = sum(m.numel() for m in masks.values())
    assert sum(int((m == 0).sum()) for m in masks.values()) == round(sparsity * total)
    assert all(int(m.sum()) > 0 for m in masks.values())
    # every output still receives signal from the input
    out = synflow_model(torch.ones(1, 64)).detach()
    reach = torch.ones(64)
    for layer in (synflow_model[0], synflow_model[2], synflow_model[4]):
        reach = (effective_weight(layer) != 0).double() @ reach.double()
    assert torch.all(reach > 0) and out.shape == (1, 4)


def test_synflow_on_bert_keeps_query_and_key_and_reports_bad_chains():
    model = tiny_bert()
    synflow_prune(model, 0.95, iterations=20, targets=find_targets(model, include_embeddings=True, include_classifier=True))
    for name, module in find_targets(model, include_embeddings=True, include_classifier=True).items():
        assert int((effective_weight(module) != 0).sum()) > 0, name
    odd = nn.ModuleDict({"a": nn.Linear(4, 8), "b": nn.Linear(5, 2)})
    with pytest.raises(BertliteError, match="chain"):
        synflow_prune(odd, 0.5, iterations=2)
