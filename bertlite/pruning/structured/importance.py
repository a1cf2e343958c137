"""Importance scores for every attention head and FFN neuron (higher = more important, pruned last).

Criteria (`criterion=`):

* ``taylor`` -- Michel et al. (2019), "Are Sixteen Heads Really Better than One?": I = E_x |dL(x)/dg|, the expected
  absolute gradient of the loss with respect to the unit's gate g at g = 1, i.e. the first-order Taylor estimate
  of the loss change when the unit is removed. For a neuron, dL/dg = sum over tokens of activation x gradient
  (Molchanov et al. 2017). Computed from per-example gradients, as in the paper.
* ``fisher`` -- Optimal-Brain-Damage saliency with the empirical Fisher as the Hessian (LeCun et al. 1990;
  Kwon et al. 2022): removing a unit moves its gate by 1, so the loss rises by about 1/2 * F with
  F = E_x (dL(x)/dg)^2.
* ``magnitude`` -- no data: the L2 norm of all weights that belong to the unit (a head's query/key/value rows and
  output-projection columns; a neuron's input row and output column).

Scores are normalised per layer by their L2 norm (Michel et al.), which makes them comparable across layers for a
global ranking; `normalize=False` keeps the raw values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import BertliteError
from .gates import UnitGates, encoder_layers, head_size

CRITERIA = ("taylor", "fisher", "magnitude")
DATA_CRITERIA = ("taylor", "fisher")


@dataclass
class UnitScores:
    """Per-layer scores: `heads[layer]` has one entry per head, `ffn[layer]` one per FFN neuron (CPU float32)."""

    heads: list[torch.Tensor]
    ffn: list[torch.Tensor]
    criterion: str
    normalized: bool = False

    def normalize(self) -> "UnitScores":
        """Each layer's scores divided by their L2 norm (Michel et al. 2019)."""

        def per_layer(scores: list[torch.Tensor]) -> list[torch.Tensor]:
            return [s / s.norm() if s.numel() and s.norm() > 0 else s.clone() for s in scores]

        return UnitScores(per_layer(self.heads), per_layer(self.ffn), self.criterion, normalized=True)


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise BertliteError(f"Unknown importance criterion {criterion!r}: choose one of {', '.join(CRITERIA)}.")
    return criterion


class ImportanceAccumulator:
    """Sums per-example gate gradients (recorded by `UnitGates` with requires_grad) into taylor or fisher scores.

    Call `update()` after each backward pass; it consumes the recorded gradients. Used both by
    `compute_importance` and, during training, by `GradualPruningCallback`.
    """

    def __init__(self, gates: UnitGates, criterion: str = "taylor"):
        if check_criterion(criterion) not in DATA_CRITERIA:
            raise BertliteError(f"ImportanceAccumulator needs a data criterion ({', '.join(DATA_CRITERIA)}), not {criterion!r}.")
        self.gates = gates
        self.criterion = criterion
        self.reset()

    def reset(self) -> None:
        # Sums and example counts per layer; a layer whose block was removed (0 units) records nothing.
        self.sums = {"heads": [torch.zeros(g.numel()) for g in self.gates.heads],
                     "ffn": [torch.zeros(g.numel()) for g in self.gates.ffn]}
        self.counts = {"heads": [0] * len(self.gates.heads), "ffn": [0] * len(self.gates.ffn)}

    @property
    def examples(self) -> int:
        """Examples seen (by the layers that have units)."""
        return max([*self.counts["heads"], *self.counts["ffn"], 0])

    @torch.no_grad()
    def update(self) -> None:
        """Adds the gradients of the forward/backward passes since the last call, then clears them."""
        for kind, layer, expanded in self.gates.records:
            if expanded.grad is None:  # a forward pass without backward
                continue
            batch = expanded.shape[0]
            # The loss is a batch mean, so dL/dg_i carries a 1/batch factor: undo it to get per-example gradients.
            per_example = expanded.grad.float() * batch
            contribution = per_example.abs() if self.criterion == "taylor" else per_example.pow(2)
            self.sums[kind][layer] += contribution.sum(0).cpu()
            self.counts[kind][layer] += batch
        self.gates.zero_grad()

    def scores(self) -> UnitScores:
        if self.examples == 0:
            raise BertliteError("No gradients were accumulated: run forward and backward passes before asking for scores.")
        scale = 0.5 if self.criterion == "fisher" else 1.0  # OBD: delta L ~ 1/2 * F * (delta g)^2 with delta g = 1

        def average(kind: str) -> list[torch.Tensor]:
            return [total * scale / max(count, 1) for total, count in zip(self.sums[kind], self.counts[kind])]

        return UnitScores(heads=average("heads"), ffn=average("ffn"), criterion=self.criterion)


@torch.no_grad()
def magnitude_scores(model: nn.Module) -> UnitScores:
    """L2 norm of the weights each unit owns (no data needed)."""
    size = head_size(model)
    heads, ffn = [], []
    for layer in encoder_layers(model):
        attn, out = layer.attention.self, layer.attention.output.dense
        squares = sum(lin.weight.float().pow(2).view(-1, size, lin.in_features).sum((1, 2))
                      for lin in (attn.query, attn.key, attn.value))
        squares = squares + out.weight.float().pow(2).view(out.out_features, -1, size).sum((0, 2))
        heads.append(squares.sqrt().cpu())
        w_in, w_out = layer.intermediate.dense.weight.float(), layer.output.dense.weight.float()
        ffn.append((w_in.pow(2).sum(1) + w_out.pow(2).sum(0)).sqrt().cpu())
    return UnitScores(heads=heads, ffn=ffn, criterion="magnitude")


def default_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """The model's own loss when the batch has labels; otherwise cross-entropy against the model's own predictions
    (the importance of a unit is then how much it matters for what the model currently predicts)."""
    outputs = model(**batch)
    if getattr(outputs, "loss", None) is not None:
        return outputs.loss
    logits = getattr(outputs, "logits", None)
    if logits is None:
        raise BertliteError("The model returns no logits, so taylor/fisher importance needs a loss: pass loss_fn=... "
                            "or use criterion='magnitude'.")
    logits = logits.reshape(-1, logits.shape[-1])
    return F.cross_entropy(logits, logits.argmax(-1).detach())


@contextmanager
def _frozen_parameters(model: nn.Module):
    """Importance needs gradients of the gates only: skip computing weight gradients (about a third of backward)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def compute_importance(model: nn.Module, batches: Iterable[dict] | None = None, criterion: str = "taylor", *,
                       loss_fn: Callable[[nn.Module, dict], torch.Tensor] | None = None, max_batches: int | None = None,
                       normalize: bool = True, progress: bool = True) -> UnitScores:
    """Score every head and FFN neuron of `model` (BERT or Bertlite).

    `batches` yields model inputs (dicts of tensors, with `labels` when available); it is needed for taylor and
    fisher. The model is run in eval mode (no dropout) and left as it was found.
    """
    check_criterion(criterion)
    if criterion == "magnitude":
        scores = magnitude_scores(model)
        return scores.normalize() if normalize else scores
    if batches is None:
        raise BertliteError(f"The {criterion!r} criterion needs data (batches of model inputs); use criterion='magnitude' to prune without data.")
    from tqdm.auto import tqdm

    loss_fn = loss_fn or default_loss
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gates = UnitGates(model, requires_grad=True)
    accumulator = ImportanceAccumulator(gates, criterion)
    total = max_batches if max_batches is not None else (len(batches) if hasattr(batches, "__len__") else None)
    try:
        with gates, _frozen_parameters(model), torch.enable_grad():
            for step, batch in enumerate(tqdm(batches, total=total, desc=f"Importance ({criterion})", disable=not progress, leave=False)):
                if max_batches is not None and step >= max_batches:
                    break
                loss = loss_fn(model, _to_device(batch, device))
                loss.backward()
                accumulator.update()
    finally:
        model.train(was_training)
    scores = accumulator.scores()
    return scores.normalize() if normalize else scores
