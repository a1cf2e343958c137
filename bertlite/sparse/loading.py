"""Loading the model to prune and the labelled batches OBD estimates its Fisher information from."""

from __future__ import annotations

import warnings

from ..errors import BertliteError
from ..models import resolve_model_name


def load_model(name: str, num_labels: int | None = None, trust_remote_code: bool = False):
    """The model at `name`: its saved sequence classifier when it has one, a classifier with a new head when a task
    is given for a bare encoder, or the bare encoder (data-free pruning)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    path = resolve_model_name(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise BertliteError(f"Could not load a model config from {name!r}: {err}") from err
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    if is_classifier:
        if num_labels is not None and config.num_labels != num_labels:
            raise BertliteError(f"{name!r} classifies into {config.num_labels} labels but the task has {num_labels}: "
                                "pass a model fine-tuned on this task.")
        return AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=trust_remote_code)
    if num_labels is not None:
        warnings.warn(f"{name!r} has no trained classification head: a new, random one is added. Pruning scores "
                      "that use data (obd, lth) are then computed for an untrained head; prune a fine-tuned model for "
                      "meaningful results.", stacklevel=2)
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, trust_remote_code=trust_remote_code)
    return AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)


def fisher_batches(tokenizer, dataset, num_examples: int = 256, batch_size: int = 1, max_length: int = 128,
                   seed: int = 0) -> list[dict]:
    """A seeded sample of labelled training examples as padded batches (batch_size 1: per-sample Fisher)."""
    from transformers import DataCollatorWithPadding

    sample = dataset.shuffle(seed=seed).select(range(min(num_examples, len(dataset))))
    text_pair = list(sample["text_pair"]) if "text_pair" in sample.column_names else None
    encoded = tokenizer(list(sample["text"]), text_pair, truncation=True, max_length=max_length)
    labels = list(sample["label"])
    rows = [{**{k: encoded[k][i] for k in encoded}, "labels": labels[i]} for i in range(len(labels))]
    collate = DataCollatorWithPadding(tokenizer)
    return [collate(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]
