"""Per-layer sparsity report: a table for the terminal and `sparsity_report.json` for the output folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from torch import nn

from .masking import current_mask, is_masked

REPORT_NAME = "sparsity_report.json"


@dataclass
class LayerSparsity:
    name: str
    shape: list[int]
    params: int
    pruned: int

    @property
    def sparsity(self) -> float:
        return self.pruned / self.params if self.params else 0.0


@dataclass
class SparsityReport:
    method: str
    requested_sparsity: float
    scope: str
    layers: list[LayerSparsity] = field(default_factory=list)
    model_params: int = 0  # every parameter of the model, pruned or not (biases, LayerNorm, unpruned layers)
    collapsed: list[str] = field(default_factory=list)

    @property
    def prunable_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def pruned_params(self) -> int:
        return sum(layer.pruned for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Achieved sparsity of the pruned layers (what `requested_sparsity` asked for)."""
        return self.pruned_params / self.prunable_params if self.prunable_params else 0.0

    @property
    def model_sparsity(self) -> float:
        """Share of all model parameters that are pruned zeros."""
        return self.pruned_params / self.model_params if self.model_params else 0.0

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "requested_sparsity": self.requested_sparsity,
            "scope": self.scope,
            "sparsity": self.sparsity,
            "prunable_params": self.prunable_params,
            "pruned_params": self.pruned_params,
            "model_params": self.model_params,
            "model_sparsity": self.model_sparsity,
            "collapsed_layers": self.collapsed,
            "layers": [{**asdict(layer), "sparsity": layer.sparsity} for layer in self.layers],
        }

    def save(self, folder: str) -> str:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, REPORT_NAME)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        return path

    def table(self) -> str:
        width = max([len("layer"), *(len(layer.name) for layer in self.layers)])
        lines = [f"{'layer':<{width}}  {'shape':>11}  {'params':>10}  {'pruned':>10}  {'sparsity':>8}"]
        for layer in self.layers:
            shape = "x".join(str(d) for d in layer.shape)
            flag = "  <- collapsed" if layer.name in self.collapsed else ""
            lines.append(f"{layer.name:<{width}}  {shape:>11}  {layer.params:>10,}  {layer.pruned:>10,}  {layer.sparsity:>8.2%}{flag}")
        lines.append(f"{'all pruned layers':<{width}}  {'':>11}  {self.prunable_params:>10,}  {self.pruned_params:>10,}  {self.sparsity:>8.2%}")
        lines.append(f"{'whole model':<{width}}  {'':>11}  {self.model_params:>10,}  {self.pruned_params:>10,}  {self.model_sparsity:>8.2%}")
        return "\n".join(lines)


def sparsity_report(model: nn.Module, targets: dict[str, nn.Module], method: str, requested_sparsity: float,
                    scope: str) -> SparsityReport:
    """Count pruned weights per target: masked entries while masks are attached, zeros once they were removed."""
    layers = []
    for name, module in targets.items():
        if is_masked(module):
            pruned = int((current_mask(module) == 0).sum())
        else:
            pruned = int((module.weight == 0).sum())
        layers.append(LayerSparsity(name=name, shape=list(module.weight.shape), params=module.weight.numel(), pruned=pruned))
    report = SparsityReport(method=method, requested_sparsity=requested_sparsity, scope=scope, layers=layers,
                            model_params=sum(p.numel() for p in model.parameters()))
    report.collapsed = [layer.name for layer in layers if layer.pruned == layer.params]
    return report
