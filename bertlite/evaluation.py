"""Measuring models: task accuracy, parameter counts, size on disk, CPU latency."""

from __future__ import annotations

import os
import statistics
import time

import torch

from .errors import BertliteError


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    # Under DeepSpeed ZeRO-3 a rank's partitioned parameter is an empty tensor; `ds_numel` is its whole size.
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad or not trainable_only)


def folder_size_mb(path: str, patterns=(".safetensors", ".onnx", ".bin")) -> float:
    """Size of the weight files in a saved model folder, in MB (10^6 bytes)."""
    if not os.path.isdir(path):
        raise BertliteError(f"{path!r} is not a folder.")
    total = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(patterns))
    return total / 1e6


@torch.no_grad()
def predict(model, tokenizer, dataset, batch_size: int = 64, max_length: int = 128, desc: str | None = None):
    """Logits for a dataset with columns text[, text_pair]. Sorted by length so padding stays small."""
    from tqdm.auto import tqdm

    model.eval()
    texts = list(dataset["text"])
    pairs = list(dataset["text_pair"]) if "text_pair" in dataset.column_names else None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs else 0))
    out = [None] * len(texts)
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc=desc or "Evaluating", disable=desc is False, leave=False):
        idx = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in idx], [pairs[i] for i in idx] if pairs else None, truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt").to(device)
        logits = model(**enc).logits.float().cpu()
        for j, i in enumerate(idx):
            out[i] = logits[j]
    return torch.stack(out)


def accuracy(model, tokenizer, dataset, batch_size: int = 64, max_length: int = 128, desc=None) -> float:
    """Accuracy of a classifier on a split: `bertlite.metrics.evaluate_model` with accuracy alone (other metrics of
    the task: `metric_spec` and `evaluate_model` there)."""
    from .metrics import ACCURACY_ONLY, evaluate_model

    return evaluate_model(model, tokenizer, dataset, ACCURACY_ONLY, batch_size, max_length, desc)["accuracy"]


@torch.no_grad()
def measure_latency(model, batch_size: int = 8, seq_len: int = 128, warmup: int = 2, repeats: int = 10,
                    vocab_size: int | None = None) -> float:
    """Median wall time in milliseconds of one forward pass on random token ids."""
    model.eval()
    vocab = vocab_size or getattr(getattr(model, "config", None), "vocab_size", 30522)
    generator = torch.Generator().manual_seed(0)
    # Ids above the special tokens; a vocabulary-pruned model may have fewer than 1000 rows.
    ids = torch.randint(1000 if vocab > 2000 else min(5, vocab - 1), vocab, (batch_size, seq_len), generator=generator)
    mask = torch.ones_like(ids)
    for _ in range(warmup):
        model(input_ids=ids, attention_mask=mask)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@torch.no_grad()
def compare_latency(models: dict, batch_size: int = 8, seq_len: int = 128, rounds: int = 5, repeats: int = 3) -> dict:
    """Interleaved latency of several models in one process (ms, median over rounds): on a shared machine a busy
    neighbour then slows every model alike, and the ratios stay meaningful."""
    for m in models.values():
        measure_latency(m, batch_size, seq_len, warmup=2, repeats=1)
    samples = {name: [] for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            samples[name].append(measure_latency(m, batch_size, seq_len, warmup=0, repeats=repeats))
    return {name: statistics.median(v) for name, v in samples.items()}
