"""Loading the model to prune and the labelled batches OBD estimates its Fisher information from."""

from __future__ import annotations

import warnings

from .. import defaults

def load_model(name: str, num_labels: int | None = None, trust_remote_code: bool = False):
    """The model at `name`: its saved sequence classifier when it has one, a classifier with a new head when a task
    is given for a bare encoder, or the bare encoder (data-free pruning)."""
    from ...loading import is_classifier, load_config
    from ...loading import load_model as load

    if num_labels is not None and not is_classifier(load_config(name, trust_remote_code)):
        warnings.warn(f"{name!r} has no trained classification head: a new, random one is added. Pruning scores "
                      "that use data (obd, lth) are then computed for an untrained head; prune a fine-tuned model for "
                      "meaningful results.", stacklevel=2)
        return load(name, head="classifier", num_labels=num_labels, trust_remote_code=trust_remote_code)
    return load(name, num_labels=num_labels, trust_remote_code=trust_remote_code)


def fisher_batches(tokenizer, dataset, num_examples: int = defaults.OBD_EXAMPLES, batch_size: int = defaults.OBD_BATCH_SIZE,
                   max_length: int = defaults.MAX_LENGTH, seed: int = 0) -> list[dict]:
    """A seeded sample of labelled training examples as padded batches (batch_size 1: per-sample Fisher)."""
    from transformers import DataCollatorWithPadding

    sample = dataset.shuffle(seed=seed).select(range(min(num_examples, len(dataset))))
    text_pair = list(sample["text_pair"]) if "text_pair" in sample.column_names else None
    encoded = tokenizer(list(sample["text"]), text_pair, truncation=True, max_length=max_length)
    labels = list(sample["label"])
    rows = [{**{k: encoded[k][i] for k in encoded}, "labels": labels[i]} for i in range(len(labels))]
    collate = DataCollatorWithPadding(tokenizer)
    return [collate(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]
