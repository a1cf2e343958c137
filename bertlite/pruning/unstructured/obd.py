"""Optimal Brain Damage (LeCun et al. 1990): prune the weights whose removal raises the loss least.

With a quadratic model of the loss around a minimum (gradient ~ 0) and a diagonal Hessian, removing weight w_i
costs  s_i = 1/2 * h_ii * w_i^2. The Hessian diagonal of a transformer is not computed exactly; it is estimated
by the empirical Fisher information, the mean of squared gradients over a data sample, which equals the Gauss-Newton
Hessian for a well-fit model with a log-likelihood loss. Gradients are taken per batch: batches of one example give
the per-sample empirical Fisher; larger batches are cheaper but square a mean gradient, which shrinks the
per-example noise term by the batch size (fine for ranking within one run, not the same numbers).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from ...errors import BertliteError
from .masking import effective_weight, trainable_weight
from .schedule import prune_iteratively, sparsity_schedule
from .targets import find_targets

LossFn = Callable[[nn.Module, object], torch.Tensor]


def _model_loss(model: nn.Module, batch: Mapping) -> torch.Tensor:
    """The loss a Transformers model computes itself when the batch holds `labels`."""
    device = next(model.parameters()).device
    out = model(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
    if getattr(out, "loss", None) is None:
        raise BertliteError("Optimal Brain Damage needs labelled data: the model returned no loss (batches need 'labels').")
    return out.loss


def fisher_diagonal(model: nn.Module, targets: dict[str, nn.Module], batches: Iterable, loss_fn: LossFn | None = None,
                    desc: str = "Fisher information") -> dict[str, torch.Tensor]:
    """Empirical Fisher diagonal: mean over `batches` of the squared gradient of the loss w.r.t. each target weight.

    Dropout is off (eval mode) so that the estimate describes the model that will be deployed.
    """
    loss_fn = loss_fn or _model_loss
    names = list(targets)
    params = [trainable_weight(targets[name]) for name in names]
    sums = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    was_training = model.training
    model.eval()
    count = 0
    try:
        for batch in tqdm(batches, desc=desc, leave=False):
            grads = torch.autograd.grad(loss_fn(model, batch), params, allow_unused=True)
            for total, grad in zip(sums, grads):
                if grad is not None:
                    total += grad.detach().double() ** 2
            count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise BertliteError("Optimal Brain Damage got no data to estimate the Fisher information from.")
    return {name: total / count for name, total in zip(names, sums)}


def obd_saliency(targets: dict[str, nn.Module], fisher: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """s_i = 1/2 * h_ii * w_i^2 with h_ii estimated by the Fisher diagonal."""
    return {name: 0.5 * fisher[name] * effective_weight(module).double() ** 2 for name, module in targets.items()}


def obd_prune(model: nn.Module, sparsity: float, batches: Iterable, *, loss_fn: LossFn | None = None,
              scope: str = "global", iterations: int = 1, targets: dict[str, nn.Module] | None = None,
              on_collapse: str = "error") -> dict[str, torch.Tensor]:
    """Mask the `sparsity` fraction of weights of lowest OBD saliency. Returns the masks (attached to the model).

    `batches` is re-iterable data (a list or DataLoader of dicts with `labels` for a Transformers model, or anything
    `loss_fn(model, batch)` understands). With `iterations` > 1 the saliency is re-estimated after each pruning step
    with the masks in force (the Hessian changes as weights are removed).
    """
    targets = targets if targets is not None else find_targets(model)

    def score(t: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        return obd_saliency(t, fisher_diagonal(model, t, batches, loss_fn))

    return prune_iteratively(targets, score, sparsity_schedule(sparsity, iterations), scope, None, on_collapse,
                             desc="OBD pruning")
