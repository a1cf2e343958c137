"""`WordAugmenter`: TinyBERT's data augmentation by word replacement.

For every text it makes `num_variants` variants; in each, every replaceable word (see `words.split_words`) is
replaced with probability `probability` by one of its candidates drawn uniformly: a masked LM's top-k for
single-piece words when an MLM is given, nearest neighbours in the teacher's input-embedding space otherwise (and
always for words of several pieces, where TinyBERT used GloVe). Variants identical to the original or to an
earlier variant are dropped, as TinyBERT does, so a text with few replaceable words yields fewer variants.

Randomness comes from a generator seeded with (seed, example index, side), so the output depends on the seed and
the data only, not on batch sizes or the order in which chunks are processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BertliteError
from .candidates import EmbeddingNeighbours, MaskedLMCandidates
from .words import CONTINUATION, split_words


@dataclass
class AugmentationStats:
    texts: int = 0
    replaceable_words: int = 0  # summed over all variants made (before de-duplication)
    replaced_words: int = 0
    variants_kept: int = 0
    variants_dropped: int = 0  # identical to the original or to an earlier variant

    @property
    def replaced_fraction(self) -> float:
        return self.replaced_words / max(self.replaceable_words, 1)

    def to_dict(self) -> dict:
        return {"texts": self.texts, "variants_kept": self.variants_kept, "variants_dropped": self.variants_dropped,
                "replaced_fraction_of_replaceable_words": round(self.replaced_fraction, 4)}


@dataclass
class _Side:
    """One tokenized text and, per replaceable word, its candidates."""

    tokens: list[str]
    canonical: str  # the text as variants spell it (tokens joined back), so an unchanged variant compares equal
    spans: list[tuple[int, int]] = field(default_factory=list)
    candidates: list[np.ndarray] = field(default_factory=list)


class WordAugmenter:
    def __init__(self, tokenizer, neighbours: EmbeddingNeighbours, mlm: MaskedLMCandidates | None = None,
                 num_variants: int = 4, probability: float = 0.4, seed: int = 42):
        if num_variants < 1:
            raise BertliteError(f"num_variants must be >= 1, got {num_variants}.")
        if not 0 < probability <= 1:
            raise BertliteError(f"probability must be in (0, 1], got {probability}.")
        if not any(tok.startswith(CONTINUATION) for tok in tokenizer.get_vocab()):
            raise BertliteError("Word replacement needs a WordPiece (BERT-family) tokenizer with '##' continuation pieces.")
        self.tokenizer = tokenizer
        self.neighbours = neighbours
        self.mlm = mlm
        self.num_variants = num_variants
        self.probability = probability
        self.seed = seed
        self.special_tokens = set(tokenizer.all_special_tokens)
        self.stats = AugmentationStats()

    # ----- candidates for every replaceable word of many texts at once --------------------------------------------
    def _prepare(self, texts: list[str]) -> list[_Side]:
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        sides, mlm_requests, neighbour_requests = [], [], []
        for ids in encoded:
            tokens = self.tokenizer.convert_ids_to_tokens(ids)
            side = _Side(tokens, self.tokenizer.convert_tokens_to_string(tokens))
            for word in split_words(side.tokens, self.special_tokens):
                if not word.replaceable:
                    continue
                side.spans.append((word.start, word.end))
                if self.mlm is not None and word.num_pieces == 1:
                    mlm_requests.append((len(sides), len(side.spans) - 1, (ids, word.start)))
                else:
                    neighbour_requests.append((len(sides), len(side.spans) - 1, tuple(ids[word.start:word.end])))
            side.candidates = [None] * len(side.spans)
            sides.append(side)
        for requests, source in ((mlm_requests, self.mlm), (neighbour_requests, self.neighbours)):
            if requests:
                for (s, w, _), ids in zip(requests, source.candidates([r[2] for r in requests])):
                    sides[s].candidates[w] = ids
        return sides

    # ----- variants -----------------------------------------------------------------------------------------------
    def _variants(self, side: _Side, key: tuple[int, ...]) -> list[str]:
        """Exactly num_variants texts (duplicates possible; the caller de-duplicates whole examples)."""
        rng = np.random.default_rng([self.seed, *key])
        out = []
        for _ in range(self.num_variants):
            # Draw for every word whether or not it has candidates, so each word's draws do not depend on the others.
            replace = rng.random(len(side.spans)) < self.probability
            picks = rng.random(len(side.spans))
            tokens = list(side.tokens)
            for (start, end), cands, rep, pick in reversed(list(zip(side.spans, side.candidates, replace, picks))):
                if rep and len(cands):
                    tokens[start:end] = [self.tokenizer.convert_ids_to_tokens(int(cands[int(pick * len(cands))]))]
                    self.stats.replaced_words += 1
            self.stats.replaceable_words += len(side.spans)
            out.append(self.tokenizer.convert_tokens_to_string(tokens))
        return out

    def augment(self, texts: list[str], text_pairs: list[str] | None = None, indices: list[int] | None = None) -> list[list[tuple[str, ...]]]:
        """Variants of each example: a list of (text,) or (text, text_pair) tuples per example, both sides of a pair
        augmented independently and kept together. `indices` (default 0..n-1) key the random generator."""
        indices = list(range(len(texts))) if indices is None else list(indices)
        if len(indices) != len(texts) or (text_pairs is not None and len(text_pairs) != len(texts)):
            raise BertliteError("texts, text_pairs and indices must have the same length.")
        columns = [self._prepare(texts)] + ([self._prepare(text_pairs)] if text_pairs is not None else [])
        results = []
        for row, index in enumerate(indices):
            per_side = [self._variants(sides[row], (index, side_no)) for side_no, sides in enumerate(columns)]
            seen = {tuple(sides[row].canonical for sides in columns)}
            kept = []
            for example in zip(*per_side):
                if example in seen:
                    self.stats.variants_dropped += 1
                    continue
                seen.add(example)
                kept.append(example)
            self.stats.variants_kept += len(kept)
            self.stats.texts += 1
            results.append(kept)
        return results
