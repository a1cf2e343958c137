"""Distillation losses as pure functions of tensors (no model, no trainer), so each is tested directly.

Shapes: logits (B, C); hidden states and query/key/value projections (B, L, D); attention probabilities
(B, H, L, L); mask (B, L) with 1 for real tokens and 0 for padding. Padding positions never contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import UNLABELLED  # the one ignore label (examples learned from soft targets only)


def soft_logits_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) of temperature-softened distributions, times T^2 (Hinton et al. 2015) so that the
    gradient scale does not shrink as T grows. A single output (regression) is matched with MSE instead."""
    if student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits.float(), teacher_logits.float())
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean") * t * t



def hard_label_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (MSE for one output) on the gold labels, summed over labelled examples and divided by the
    batch size: unlabelled examples (label -100) contribute nothing, and a batch that is half augmented gets half
    the hard-label signal rather than the same signal from fewer examples."""
    labelled = labels != UNLABELLED
    num_classes = student_logits.shape[-1]
    if num_classes > 1:
        _check_class_ids(labels[labelled], num_classes)
    if student_logits.shape[-1] == 1:
        per_example = (student_logits.squeeze(-1).float() - labels.float()).pow(2)
    else:
        per_example = F.cross_entropy(student_logits.float(), labels.long().clamp_min(0), reduction="none")
    return (per_example * labelled).sum() / max(labels.shape[0], 1)


def _check_class_ids(labels: torch.Tensor, num_classes: int) -> None:
    """Out-of-range ids would be clamped or crash inside cross_entropy (on CUDA as a device assert): name them instead.
    Tasks loaded by bertlite.data are checked on load; this guards callers that build their own datasets."""
    bad = labels[(labels < 0) | (labels >= num_classes) | (labels != labels.long())]
    if bad.numel():
        from ..errors import BertliteError

        values = sorted({float(v) if not float(v).is_integer() else int(v) for v in bad.tolist()})[:5]
        raise BertliteError(f"Labels {values} are not class ids 0..{num_classes - 1} of the {num_classes}-class head "
                            f"(examples without a label must use {UNLABELLED}).")


def _token_weights(mask: torch.Tensor | None, batch: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """(B, L) weights: 1 for real tokens, 0 for padding."""
    if mask is None:
        return torch.ones(batch, length, dtype=like.dtype, device=like.device)
    return mask.to(like.dtype)


def hidden_state_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor | None = None,
                      kind: str = "mse", projection: torch.nn.Module | None = None) -> torch.Tensor:
    """Per-token distance between student and teacher hidden states, averaged over real tokens.

    `projection` maps the student width to the teacher width (TinyBERT's W_h) when they differ.
    mse: mean squared error per element (TinyBERT); cosine: 1 - cosine similarity per token (DistilBERT).
    """
    if projection is not None:
        student_hidden = projection(student_hidden)
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(f"hidden state shapes differ: student {tuple(student_hidden.shape)} vs teacher "
                         f"{tuple(teacher_hidden.shape)}; a projection is needed when widths differ")
    s, t = student_hidden.float(), teacher_hidden.float()
    w = _token_weights(mask, s.shape[0], s.shape[1], s)
    if kind == "mse":
        per_token = (s - t).pow(2).mean(-1)
    elif kind == "cosine":
        per_token = 1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)
    else:
        raise ValueError(f"unknown hidden loss {kind!r}; use 'mse' or 'cosine'")
    return (per_token * w).sum() / w.sum().clamp_min(1.0)


def attention_loss(student_attention: torch.Tensor, teacher_attention: torch.Tensor, mask: torch.Tensor | None = None,
                   kind: str = "kl") -> torch.Tensor:
    """Distance between attention probability maps, over real query rows and real key columns.

    When head counts differ (a student with fewer heads), both sides are averaged over heads first so the maps
    stay comparable. kl: KL(teacher row || student row), summed over keys (MiniLM); mse: squared error per
    entry (TinyBERT, here on probabilities since eager attention returns probabilities).
    """
    s, t = student_attention.float(), teacher_attention.float()
    if s.shape[1] != t.shape[1]:
        s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    if s.shape != t.shape:
        raise ValueError(f"attention shapes differ: student {tuple(s.shape)} vs teacher {tuple(t.shape)}")
    batch, heads, length, _ = s.shape
    w = _token_weights(mask, batch, length, s)  # (B, L)
    rows = w[:, None, :, None]  # queries
    cols = w[:, None, None, :]  # keys
    if kind == "kl":
        eps = 1e-12
        per_row = (t * (torch.log(t + eps) - torch.log(s + eps)) * cols).sum(-1)  # (B, H, L)
        return (per_row * rows[..., 0]).sum() / (rows[..., 0].sum() * heads).clamp_min(1.0)
    if kind == "mse":
        both = rows * cols
        return ((s - t).pow(2) * both).sum() / (both.sum() * heads).clamp_min(1.0)
    raise ValueError(f"unknown attention loss {kind!r}; use 'kl' or 'mse'")


def self_relation(states: torch.Tensor, heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiniLMv2's self-attention relation of one projection (queries, keys or values) of a layer: the (B, L, D)
    vectors split into `heads` relation heads, and softmax(A A^T / sqrt(D / heads)) over the real keys, (B, heads, L, L).
    Relation heads need not be the model's attention heads: they only have to divide the width of both models,
    which is what lets a student with other head counts and width learn from the teacher (Wang et al. 2021)."""
    batch, length, width = states.shape
    if width % heads:
        raise ValueError(f"{heads} relation heads do not divide the width {width}")
    a = states.float().view(batch, length, heads, width // heads).transpose(1, 2)  # (B, R, L, d)
    scores = a @ a.transpose(-1, -2) / (width // heads) ** 0.5
    if mask is not None:
        # Padding keys get no probability, so a padded row is the relation of the real tokens alone.
        scores = scores.masked_fill(~mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    return scores.softmax(-1)


def relation_loss(student_states: torch.Tensor, teacher_states: torch.Tensor, mask: torch.Tensor | None = None,
                  heads: int = 12) -> torch.Tensor:
    """KL(teacher relation || student relation) of one projection, summed over keys and averaged over real query
    rows and relation heads (MiniLMv2). Widths may differ: the relations are (L x L) whatever the width."""
    return attention_loss(self_relation(student_states, heads, mask), self_relation(teacher_states, heads, mask),
                          mask, "kl")


LAYER_REDUCTIONS = ("mean", "sum")


def combine_layer_losses(losses: list[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """One loss from the per-layer losses of the mapped layers. mean: the weight is the weight of the whole
    stack, whatever the depth; sum: each matched layer weighs as much as one logit loss (TextBrewer's
    intermediate matches), so a deeper student gets more intermediate signal."""
    if reduction not in LAYER_REDUCTIONS:
        raise ValueError(f"unknown layer reduction {reduction!r}; use 'mean' or 'sum'")
    stacked = torch.stack(losses)
    return stacked.sum() if reduction == "sum" else stacked.mean()
