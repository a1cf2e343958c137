"""Tiny in-process BERT models and inputs shared by the structured-pruning tests."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

HIDDEN, LAYERS, HEADS, FFN, VOCAB = 32, 3, 4, 64, 100
HEAD_SIZE = HIDDEN // HEADS


def tiny_config(**overrides) -> BertConfig:
    values = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
                  vocab_size=VOCAB, max_position_embeddings=64, num_labels=3)
    values.update(overrides)
    return BertConfig(**values)


def tiny_classifier(seed: int = 0, model_class=BertForSequenceClassification, **overrides):
    torch.manual_seed(seed)
    model = model_class(tiny_config(**overrides)).eval()
    # Random-init biases are 0 in BERT: give them values so that tests notice a mis-sliced bias.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def tiny_inputs(batch: int = 3, length: int = 9, seed: int = 1, pad: bool = True) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    if pad:
        mask[0, length - 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def tiny_batches(n: int = 3, batch: int = 4, length: int = 9, labels: int = 3, pad: bool = True) -> list[dict]:
    out = []
    for i in range(n):
        inputs = tiny_inputs(batch, length, seed=10 + i, pad=pad)
        inputs["labels"] = torch.randint(0, labels, (batch,), generator=torch.Generator().manual_seed(100 + i))
        out.append(inputs)
    return out


def removed_parameter_count(plan_heads: dict, plan_ffn: dict, hidden: int = HIDDEN, head_size: int = HEAD_SIZE) -> int:
    """Rows/columns surgery must remove: per head 3 x (head_size rows of hidden weights + head_size biases) plus
    head_size output-projection columns; per neuron an input row + bias and an output column."""
    per_head = 3 * (head_size * hidden + head_size) + hidden * head_size
    per_neuron = hidden + 1 + hidden
    return per_head * sum(len(v) for v in plan_heads.values()) + per_neuron * sum(len(v) for v in plan_ffn.values())
