"""The distillation losses as pure functions: zero when student equals teacher, equal to hand-computed values."""

import math

import pytest
import torch

from bertlite.distillation.losses import (attention_loss, combine_layer_losses, hard_label_loss, hidden_state_loss, relation_loss,
                                         self_relation, soft_logits_loss)
from bertlite.errors import BertliteError


def test_soft_logits_zero_when_equal_and_positive_otherwise():
    logits = torch.randn(4, 3)
    assert soft_logits_loss(logits, logits.clone(), temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)
    assert soft_logits_loss(logits, logits.flip(0), temperature=2.0).item() > 0


def test_soft_logits_matches_hand_computed_kl_times_t_squared():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 2.0]])
    T = 2.0
    ps = [math.exp(x / T) for x in (1.0, 0.0)]
    ps = [p / sum(ps) for p in ps]
    pt = [math.exp(x / T) for x in (0.0, 2.0)]
    pt = [p / sum(pt) for p in pt]
    expected = sum(q * math.log(q / p) for p, q in zip(ps, pt)) * T * T
    assert soft_logits_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)


def test_soft_logits_regression_is_mse():
    s, t = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]])
    assert soft_logits_loss(s, t).item() == pytest.approx((1 + 4) / 2)


def test_hard_label_loss_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert hard_label_loss(logits, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_hidden_mse_ignores_padding_and_matches_hand_value():
    s = torch.zeros(1, 3, 2)
    t = torch.zeros(1, 3, 2)
    t[0, 0] = torch.tensor([1.0, 3.0])  # real token: squared error mean (1 + 9) / 2 = 5
    t[0, 2] = torch.tensor([100.0, 100.0])  # padding: must not count
    mask = torch.tensor([[1, 1, 0]])
    assert hidden_state_loss(s, t, mask, "mse").item() == pytest.approx(5.0 / 2)  # averaged over 2 real tokens
    assert hidden_state_loss(t, t, mask, "mse").item() == 0.0


def test_hidden_cosine_zero_for_scaled_states():
    h = torch.randn(2, 4, 8)
    assert hidden_state_loss(h, 3 * h, kind="cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert hidden_state_loss(h, -h, kind="cosine").item() == pytest.approx(2.0, abs=1e-5)


def test_hidden_projection_used_and_receives_gradient():
    proj = torch.nn.Linear(4, 8)
    s = torch.randn(2, 3, 4)
    t = torch.randn(2, 3, 8)
    loss = hidden_state_loss(s, t, projection=proj)
    loss.backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="projection"):
        hidden_state_loss(s, t)


def _attn(b=2, h=2, length=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(b, h, length, length, generator=g), -1)


def test_attention_losses_zero_when_equal():
    a = _attn()
    for kind in ("kl", "mse"):
        assert attention_loss(a, a.clone(), kind=kind).item() == pytest.approx(0.0, abs=1e-6)
        assert attention_loss(_attn(seed=1), a, kind=kind).item() > 0


def test_attention_kl_hand_value_and_mask():
    s = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])
    t = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])
    kl_row0 = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    kl_row1 = 0.2 * math.log(0.2 / 0.5) + 0.8 * math.log(0.8 / 0.5)
    assert attention_loss(s, t, kind="kl").item() == pytest.approx((kl_row0 + kl_row1) / 2, rel=1e-5)
    # Second token is padding: only row 0, column 0 counts; 0.9 * log(0.9 / 0.5)
    assert attention_loss(s, t, torch.tensor([[1, 0]]), kind="kl").item() == pytest.approx(0.9 * math.log(0.9 / 0.5), rel=1e-5)


def test_attention_different_head_counts_compare_head_means():
    t = _attn(h=4)
    s = t.mean(1, keepdim=True).expand(-1, 2, -1, -1).contiguous()  # 2 heads that equal the teacher's mean map
    assert attention_loss(s, t, kind="mse").item() == pytest.approx(0.0, abs=1e-7)


def test_unknown_kinds_raise():
    with pytest.raises(ValueError):
        hidden_state_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), kind="l1")
    with pytest.raises(ValueError):
        attention_loss(_attn(), _attn(), kind="js")


def test_hard_label_loss_ignores_unlabelled_examples_and_scales_by_their_share():
    logits = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    # The second example is augmented (label -100): only the first counts, weighted by its share of the batch.
    assert hard_label_loss(logits, torch.tensor([0, -100])).item() == pytest.approx(ce0 / 2, rel=1e-6)
    assert hard_label_loss(logits, torch.tensor([-100, -100])).item() == 0.0


def test_layer_losses_mean_or_sum_match_hand_values():
    losses = [torch.tensor(0.5), torch.tensor(1.0), torch.tensor(3.0)]
    assert combine_layer_losses(losses, "mean").item() == pytest.approx(1.5)
    assert combine_layer_losses(losses, "sum").item() == pytest.approx(4.5)
    zeros = [hidden_state_loss(h, h.clone()) for h in torch.randn(3, 2, 4, 8)]  # student equals teacher at every layer
    assert combine_layer_losses(zeros, "sum").item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="mean"):
        combine_layer_losses(losses, "max")


def test_config_rejects_unknown_layer_reduction(tmp_path):
    from bertlite import DistillationConfig

    with pytest.raises(BertliteError, match="layer_loss_reduction"):
        DistillationConfig(output_dir=str(tmp_path), layer_loss_reduction="median", report_to="none")


def _mask():
    return torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


def test_relation_loss_zero_when_equal_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    states = torch.randn(2, 5, 8, generator=g)
    assert relation_loss(states, states.clone(), _mask(), heads=2).item() == pytest.approx(0.0, abs=1e-6)
    assert relation_loss(torch.randn(2, 5, 8, generator=g), states, _mask(), heads=2).item() > 0.01


def test_relation_matches_hand_computed_kl_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    s, t, mask = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g), _mask()
    # By hand: per example, relation head and real query row, softmax over real keys of a.a/sqrt(d), then KL.
    total, rows = 0.0, 0
    for b in range(2):
        n = int(mask[b].sum())
        for r in range(2):
            a_s, a_t = s[b, :n, 2 * r:2 * r + 2], t[b, :n, 2 * r:2 * r + 2]
            p_s = torch.softmax(a_s @ a_s.T / math.sqrt(2), -1)
            p_t = torch.softmax(a_t @ a_t.T / math.sqrt(2), -1)
            total += (p_t * (p_t.log() - p_s.log())).sum().item()
            rows += n
    assert relation_loss(s, t, mask, heads=2).item() == pytest.approx(total / rows, rel=1e-5)
    # Whatever sits at padded positions changes nothing, and padded keys get no probability.
    s2, t2 = s.clone(), t.clone()
    s2[1, 3:], t2[1, 3:] = 100.0, -7.0
    assert relation_loss(s2, t2, mask, heads=2).item() == pytest.approx(total / rows, rel=1e-5)
    assert self_relation(s, 2, mask)[1, :, :, 3:].abs().max().item() == 0.0


def test_relation_compares_models_of_different_widths():
    # A teacher twice as wide whose relation heads hold the student's vectors (scaled so that the 1/sqrt(d) of the
    # wider head gives the same scores) and zeros: the same relations, so zero loss; widths only set the head split.
    g = torch.Generator().manual_seed(2)
    student = torch.randn(2, 5, 6, generator=g)  # 3 heads of 2
    heads = student.view(2, 5, 3, 2) * 2 ** 0.25
    teacher = torch.cat([heads, torch.zeros_like(heads)], -1).view(2, 5, 12)  # 3 heads of 4
    assert relation_loss(student, teacher, _mask(), heads=3).item() == pytest.approx(0.0, abs=1e-6)
    assert relation_loss(student, torch.randn(2, 5, 12, generator=g), _mask(), heads=3).item() > 0.01
    with pytest.raises(ValueError, match="relation heads"):
        relation_loss(student, teacher, _mask(), heads=4)
