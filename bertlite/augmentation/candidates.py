"""Where replacement words come from: nearest neighbours in a model's input-embedding space, or a masked language
model's top-k predictions in context. Both only ever propose whole-word vocabulary entries (see `words.is_word_token`),
never the word being replaced, never special or [unused] tokens."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BertliteError
from .words import is_word_token


def replacement_vocabulary(tokenizer, vocab_size: int) -> torch.Tensor:
    """(vocab_size,) bool: which token ids may be proposed as a replacement word."""
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    allowed = torch.tensor([i not in special and tok is not None and is_word_token(tok) for i, tok in enumerate(tokens)])
    if not bool(allowed.any()):
        raise BertliteError("The tokenizer's vocabulary has no alphabetic whole-word tokens to use as replacements.")
    return allowed


class EmbeddingNeighbours:
    """Cosine nearest neighbours in an input-embedding matrix (the teacher's own, offline).

    A word of one piece is represented by that piece's embedding; a word of several pieces by the normalised mean
    of its pieces' normalised embeddings. Results are cached per word, so each distinct word costs one row of a
    matrix product, computed for many words at once.
    """

    def __init__(self, embeddings: torch.Tensor, tokenizer, top_k: int = 15):
        if top_k < 1:
            raise BertliteError(f"top_k must be >= 1, got {top_k}.")
        self.top_k = top_k
        self.unit = F.normalize(embeddings.detach().float(), dim=-1)
        self.allowed = replacement_vocabulary(tokenizer, embeddings.shape[0])
        self.candidate_ids = torch.nonzero(self.allowed).squeeze(1)
        self.candidate_unit = self.unit[self.candidate_ids]
        self.column = torch.full((embeddings.shape[0],), -1, dtype=torch.long)  # token id -> column in candidate_unit
        self.column[self.candidate_ids] = torch.arange(len(self.candidate_ids))
        self._cache: dict[tuple[int, ...], np.ndarray] = {}

    @classmethod
    def from_model(cls, model, tokenizer, top_k: int = 15) -> "EmbeddingNeighbours":
        embeddings = model.get_input_embeddings().weight
        if len(tokenizer) > embeddings.shape[0]:
            raise BertliteError(f"The tokenizer has {len(tokenizer)} tokens but the model only {embeddings.shape[0]} "
                                "embeddings: they do not belong together.")
        return cls(embeddings, tokenizer, top_k)

    def word_vector(self, piece_ids: tuple[int, ...]) -> torch.Tensor:
        return F.normalize(self.unit[list(piece_ids)].mean(0), dim=-1)

    def candidates(self, words: list[tuple[int, ...]]) -> list[np.ndarray]:
        """Up to top_k replacement token ids per word (tuple of its piece ids), most similar first."""
        missing = list(dict.fromkeys(w for w in words if w not in self._cache))
        for start in range(0, len(missing), 1024):  # bounded memory: 1024 x |candidates| scores at a time
            chunk = missing[start:start + 1024]
            queries = torch.stack([self.word_vector(w) for w in chunk])
            scores = queries @ self.candidate_unit.T
            # Never propose the word itself, nor (for a word of several pieces) its own first piece, which is always
            # close to the mean of the pieces and would just cut the word short.
            rows = [row for row, word in enumerate(chunk) for _ in word]
            columns = self.column[[piece for word in chunk for piece in word]]
            keep = columns >= 0
            scores[torch.tensor(rows)[keep], columns[keep]] = -float("inf")
            top = scores.topk(min(self.top_k, scores.shape[1]), dim=1).indices
            for word, ids in zip(chunk, self.candidate_ids[top].numpy()):
                self._cache[word] = ids
        return [self._cache[w] for w in words]


class MaskedLMCandidates:
    """Top-k predictions of a masked language model for a single-piece word, with that word masked in its sentence
    (TinyBERT's main source). Many masked copies go through the model in each batch."""

    def __init__(self, model, tokenizer, allowed: torch.Tensor, top_k: int = 15, batch_size: int = 64, max_length: int = 128):
        if tokenizer.mask_token_id is None:
            raise BertliteError("The masked language model's tokenizer has no [MASK] token.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.top_k = top_k
        self.batch_size = batch_size
        self.max_length = max_length
        vocab = model.get_output_embeddings().weight.shape[0]
        self.allowed = torch.zeros(vocab, dtype=torch.bool)
        self.allowed[: min(vocab, len(allowed))] = allowed[:vocab]

    def _masked_input(self, piece_ids: list[int], position: int) -> tuple[list[int], int]:
        """[CLS] context [SEP] with `position` masked; a window around it when the text is too long."""
        room = self.max_length - 2
        start = max(0, min(position - room // 2, len(piece_ids) - room))
        window = list(piece_ids[start:start + room])
        window[position - start] = self.tokenizer.mask_token_id
        return [self.tokenizer.cls_token_id, *window, self.tokenizer.sep_token_id], position - start + 1

    @torch.no_grad()
    def candidates(self, requests: list[tuple[list[int], int]]) -> list[np.ndarray]:
        """For each (piece ids of a text, position of a single-piece word): up to top_k replacement ids."""
        results: list[np.ndarray] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            inputs = [self._masked_input(ids, pos) for ids, pos in chunk]
            length = max(len(ids) for ids, _ in inputs)
            pad = self.tokenizer.pad_token_id or 0
            input_ids = torch.tensor([ids + [pad] * (length - len(ids)) for ids, _ in inputs], device=device)
            attention = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids, _ in inputs], device=device)
            logits = self.model(input_ids=input_ids, attention_mask=attention).logits
            rows = logits[torch.arange(len(inputs)), torch.tensor([pos for _, pos in inputs])].float().cpu()
            rows[:, ~self.allowed] = -float("inf")
            rows[torch.arange(len(chunk)), torch.tensor([ids[pos] for ids, pos in chunk])] = -float("inf")
            results.extend(rows.topk(self.top_k, dim=1).indices.numpy())
        return results
