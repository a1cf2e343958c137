"""An int8 embedding matrix (one scale per row), for size: the word embeddings are half of MiniLM's weights.

Rows are dequantized after the lookup, so memory and disk hold int8 and only the looked-up rows become fp32.
"""

from __future__ import annotations

import torch

from .weights import QuantizedWeight, quantize_weight


class Int8Embedding(torch.nn.Module):
    def __init__(self, weight: QuantizedWeight, padding_idx: int | None = None):
        super().__init__()
        if not weight.per_channel:
            raise ValueError("Int8Embedding needs one scale per row (per_channel=True)")
        self.num_embeddings, self.embedding_dim = weight.shape
        self.padding_idx = padding_idx
        self.register_buffer("weight_int8", weight.int8.contiguous())
        self.register_buffer("weight_scale", weight.scale.to(torch.float32).contiguous())
        self.register_buffer("weight_zero_point", weight.zero_point.to(torch.int32).contiguous())

    @classmethod
    def from_float(cls, embedding: torch.nn.Embedding) -> "Int8Embedding":
        return cls(quantize_weight(embedding.weight, per_channel=True), embedding.padding_idx)

    @property
    def quantized_weight(self) -> QuantizedWeight:
        return QuantizedWeight(self.weight_int8, self.weight_scale, self.weight_zero_point, True)

    @property
    def weight(self) -> torch.Tensor:
        # Code that reads `embeddings.weight` (tying, resizing, inspection) sees the dequantized matrix.
        return self.quantized_weight.dequantize()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # quantize_weight is symmetric: the zero point is 0 and needs no subtraction.
        rows = torch.nn.functional.embedding(input_ids, self.weight_int8).to(torch.float32)
        scale = torch.nn.functional.embedding(input_ids, self.weight_scale.unsqueeze(1))
        return rows * scale

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}, dtype=int8"
