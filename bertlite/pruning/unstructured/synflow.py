"""SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively conserving synaptic flow").

Score of a weight: |theta * dR/dtheta| with R = 1^T (prod_l |W_l|) 1, the summed output of the network with every
weight replaced by its absolute value, fed an all-ones input. R needs no data, so the masks do not depend on any
input. Pruning is iterative (default 100 steps, exponential schedule): re-scoring after every step lets the scores
of a thinning layer rise, and because every layer's scores sum to the same R (conservation of synaptic flow), no
layer can be emptied before the network as a whole runs out of weights -- the layer collapse that global magnitude
pruning suffers from.

How a BERT is linearised (this is a choice, not something the paper specifies for transformers): R is computed on
the *chain of prunable layers* in definition order -- for BERT query, key, value, attention output, intermediate,
output of each layer (then pooler and classifier when the head is pruned) -- as a deep linear network of |W| matrices.
Residual connections, LayerNorm, GELU and attention softmax are left out. Running the real model instead fails for
BERT: an all-ones input makes every token identical, so softmax attention is uniform and query/key receive zero
gradient (they would be pruned first, i.e. collapse), and LayerNorm maps an all-ones vector to zero. The chain keeps
every prunable matrix on the flow path, so conservation holds exactly for each of them. Embedding tables, when
pruned, are the chain's input: an all-ones one-hot input sums every row of each table.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import BertliteError
from .masking import effective_weight
from .schedule import prune_iteratively, sparsity_schedule
from .targets import find_targets

DEFAULT_ITERATIONS = 100


def _chain_error(name: str, expected: int, got: int) -> BertliteError:
    return BertliteError(
        f"SynFlow runs its data-free flow through the prunable layers in definition order, but {name!r} takes "
        f"{got} inputs where the previous layer gives {expected}. This model's layers do not form a chain; use "
        "--method magnitude or obd for it."
    )


def synflow_scores(targets: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """|theta * dR/dtheta| for every target weight (masked weights score 0), computed in float64."""
    names = list(targets)
    weights = {name: effective_weight(targets[name]).double().abs().requires_grad_(True) for name in names}
    embeddings = [n for n in names if isinstance(targets[n], nn.Embedding)]
    linears = [n for n in names if not isinstance(targets[n], nn.Embedding)]
    if embeddings and linears and names.index(embeddings[-1]) > names.index(linears[0]):
        raise BertliteError("SynFlow expects the embedding tables before every prunable Linear layer.")
    with torch.enable_grad():
        if embeddings:
            # One-hot input of all ones: every row of each table flows into the sum of embeddings.
            flow = sum(weights[name].sum(dim=0) for name in embeddings)
        else:
            flow = torch.ones(weights[linears[0]].shape[1], dtype=torch.float64, device=weights[linears[0]].device)
        for name in linears:
            weight = weights[name]
            if weight.shape[1] != flow.shape[0]:
                raise _chain_error(name, flow.shape[0], weight.shape[1])
            flow = weight @ flow
            # Rescale by a constant (detached): R, and so every score, is multiplied by the same factor, which keeps
            # a product of dozens of layers inside float64's range without changing the ranking.
            flow = flow / flow.detach().max().clamp_min(1e-300)
        grads = torch.autograd.grad(flow.sum(), [weights[n] for n in names], allow_unused=True)
    return {n: (g * weights[n]).detach() if g is not None else torch.zeros_like(weights[n]) for n, g in zip(names, grads)}


def synflow_prune(model: nn.Module, sparsity: float, *, iterations: int = DEFAULT_ITERATIONS, scope: str = "global",
                  targets: dict[str, nn.Module] | None = None, on_collapse: str = "error") -> dict[str, torch.Tensor]:
    """Mask the `sparsity` fraction of weights by iterative SynFlow (no data). Returns the masks (attached)."""
    targets = targets if targets is not None else find_targets(model)
    return prune_iteratively(targets, synflow_scores, sparsity_schedule(sparsity, iterations), scope, None,
                             on_collapse, desc="SynFlow")
