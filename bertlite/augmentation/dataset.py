"""Augmented datasets on disk: making them from a task split, saving them with a record of how they were made, and
adding them to the training data of a distillation run."""

from __future__ import annotations

import json
import os
import time

from tqdm.auto import tqdm

from ..data import UNLABELLED
from ..errors import BertliteError
from .augmenter import WordAugmenter

RECORD_FILE = "bertlite_augmentation.json"
# Augmented examples keep the source's texts but not its label: replacing words can flip the meaning, so the
# trainer must learn from the teacher's soft targets only (it skips the hard-label loss for negative labels).


def augment_dataset(dataset, augmenter: WordAugmenter, chunk_size: int = 256, desc: str = "Augmenting"):
    """A `datasets.Dataset` with the variants of every example: columns text[, text_pair], label (-100),
    source_index (row of the example in `dataset`) and variant (its number among that example's variants)."""
    from datasets import Dataset, Features, Value

    has_pair = "text_pair" in dataset.column_names
    rows: dict[str, list] = {"text": [], **({"text_pair": []} if has_pair else {}), "label": [], "source_index": [], "variant": []}
    with tqdm(total=len(dataset), desc=desc, unit="ex") as bar:
        for start in range(0, len(dataset), chunk_size):
            batch = dataset[start:start + chunk_size]
            indices = list(range(start, start + len(batch["text"])))
            for index, variants in zip(indices, augmenter.augment(batch["text"], batch["text_pair"] if has_pair else None, indices)):
                for number, example in enumerate(variants):
                    rows["text"].append(example[0])
                    if has_pair:
                        rows["text_pair"].append(example[1])
                    rows["label"].append(UNLABELLED)
                    rows["source_index"].append(index)
                    rows["variant"].append(number)
            bar.update(len(indices))
    features = Features({name: Value("string") if name.startswith("text") else Value("int64") for name in rows})
    return Dataset.from_dict(rows, features=features)


def save_augmented(dataset, folder: str, record: dict) -> None:
    dataset.save_to_disk(folder)
    with open(os.path.join(folder, RECORD_FILE), "w") as f:
        json.dump(record, f, indent=2)


def check_augmented_folder(folder: str) -> str:
    """Path of the folder's record; a clear error when the folder is not an augmented dataset."""
    record_path = os.path.join(folder, RECORD_FILE)
    if not os.path.isdir(folder):
        raise BertliteError(f"The augmented data folder {folder!r} does not exist; create it with `bertlite augment --output_dir {folder}`.")
    if not os.path.isfile(record_path):
        raise BertliteError(f"{folder!r} has no {RECORD_FILE}: it was not written by `bertlite augment`.")
    return record_path


def load_augmented(folder: str):
    """(Dataset, record) of a folder written by `bertlite augment`."""
    from datasets import load_from_disk

    with open(check_augmented_folder(folder)) as f:
        record = json.load(f)
    return load_from_disk(folder), record


def with_augmented(train, folder: str, tokenizer, *, max_length: int, task: str, is_pair: bool = False,
                   max_train_examples: int | None = None, log=print):
    """(The tokenized training split followed by the tokenized augmented examples of `folder`, a summary of how
    they were made).

    Only the model's inputs and the label (-100) of the augmented examples are kept, cast to the training split's
    features so the two concatenate. With `max_train_examples`, only variants of the examples that were kept are used.
    """
    augmented, record = load_augmented(folder)
    if record.get("task") != task:
        log(f"Note: {folder} was augmented from task {record.get('task')!r}, not {task!r}.")
    has_pair = "text_pair" in augmented.column_names
    if has_pair != is_pair:
        raise BertliteError(f"{folder} holds {'sentence pairs' if has_pair else 'single sentences'} but task {task!r} has "
                            f"{'sentence pairs' if is_pair else 'single sentences'}: augment the task you distil on.")
    if max_train_examples is not None:
        augmented = augmented.filter(lambda rows: [i < max_train_examples for i in rows], input_columns="source_index", batched=True)
    started = time.perf_counter()
    combined = append_soft_target_examples(train, augmented, tokenizer, max_length=max_length, desc="Tokenizing augmented")
    encoded_count = len(combined) - len(train)
    log(f"Training on {len(train)} original + {encoded_count} augmented examples from {folder} "
        f"({time.perf_counter() - started:.0f}s to tokenize; augmented examples use the teacher's soft targets only).")
    summary = {key: record.get(key) for key in ("task", "num_variants", "probability", "top_k", "seed", "mlm", "teacher")}
    summary["augmented_examples"] = encoded_count
    return combined, summary


def append_soft_target_examples(train, extra, tokenizer, *, max_length: int, desc: str = "Tokenizing"):
    """`train` (tokenized) followed by `extra` (columns text[, text_pair], label), tokenized and cast to the
    training split's features so the two concatenate; only the model's inputs and the label are kept."""
    from datasets import concatenate_datasets

    has_pair = "text_pair" in extra.column_names
    encoded = extra.map(lambda b: tokenizer(b["text"], b["text_pair"] if has_pair else None, truncation=True, max_length=max_length),
                        batched=True, remove_columns=[c for c in extra.column_names if c != "label"], desc=desc)
    encoded = encoded.select_columns([c for c in train.column_names if c in encoded.column_names])
    missing = set(train.column_names) - set(encoded.column_names)
    if missing:
        raise BertliteError(f"The added examples lack {sorted(missing)} that the training split has; were they made for another tokenizer?")
    return concatenate_datasets([train, encoded.cast(train.features)])
