"""Tiny models shared by the weight-pruning tests."""

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification


def tiny_bert(seed: int = 0, vocab_size: int = 100) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    return BertForSequenceClassification(config).eval()


def random_batch(seed: int = 0, size: int = 8, length: int = 12, vocab_size: int = 100) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(5, vocab_size, (size, length), generator=generator),
            "labels": torch.randint(0, 2, (size,), generator=generator)}


def sgd_train_fn(batch: dict, steps: int = 3, lr: float = 0.5):
    """A train_fn(model) that moves every weight: a few plain SGD steps on one batch."""

    def train(model: nn.Module) -> None:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        for _ in range(steps):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()

    return train
