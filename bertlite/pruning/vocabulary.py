"""Vocabulary pruning: keep only the embedding rows of the tokens a task uses, and a tokenizer that matches.

A BERT word-embedding table is 30,522 x hidden (46.9 MB of a MiniLM's 90 MB), while a task's texts use a few
thousand of those tokens. Vocabulary pruning keeps the rows of the tokens that occur in the given texts (the
task's training data, optionally a corpus too), always the special and added tokens, in their original order;
every other row is removed and the tokenizer is rewritten so that its ids are the rows of the pruned table.
The method follows TextPruner's vocabulary pruner (count the tokens of the texts, keep those seen at least
`min_count` times plus the special tokens, select those rows, write the smaller vocabulary).

API
---
    from bertlite.pruning.vocabulary import (prune_vocabulary, prune_vocabulary_folder, pruned_token_share,
                                            task_texts, unk_share)

    # in memory: a model and its (fast, WordPiece) tokenizer
    texts = task_texts("rotten_tomatoes", "train")
    small_model, small_tokenizer, report = prune_vocabulary(model, tokenizer, texts, min_count=1)
    report.kept_size, report.original_size, report.embedding_mb_before, report.embedding_mb_after
    test = task_texts("rotten_tomatoes", "test")
    unk_share(tokenizer, small_tokenizer, test)           # 0.0 .. 1.0: test tokens now inside an [UNK]
    pruned_token_share(tokenizer, small_tokenizer, test)  # test tokens the pruned vocabulary lacks (re-split or [UNK])

    # on disk: a saved fp32 folder (or an alias such as "minilm") in, a pruned folder out
    prune_vocabulary_folder("runs/student", "runs/student-vocab", texts, texts_source="rotten_tomatoes train",
                            test_texts=task_texts("rotten_tomatoes", "test"))

The output folder holds model.safetensors, config.json (vocab_size and the special-token ids updated), the
tokenizer (tokenizer.json with the WordPiece vocabulary, the post-processor's [CLS]/[SEP] ids, the added tokens'
ids and the padding id remapped, plus vocab.txt) and compression_config.json with a "vocabulary_pruning" step.
It loads with plain Transformers (`AutoModel...`/`AutoTokenizer.from_pretrained`), and it can be quantized
afterwards (`bertlite quantize`); prune the vocabulary before quantizing, not after.

What happens to a token that was removed: the pruned tokenizer is an ordinary WordPiece tokenizer over the kept
vocabulary. A word whose pieces were all kept is split exactly as before (greedy longest match over a subset
finds the same pieces), so texts made only of kept tokens give the same ids, remapped, and the same logits.
A word that needs a removed piece is split again from the kept pieces where WordPiece can, and otherwise becomes
one [UNK]. `unk_share` measures the share of the original tokens that end up inside an [UNK];
`pruned_token_share` the share that the pruned vocabulary lacks (re-split or [UNK]), always at least as large.

Measured (packaged MiniLM, rotten_tomatoes train as the texts, min_count=1): 11,984 of 30,522 tokens kept, the
table 46.9 -> 18.4 MB fp32 and the weights 90.9 -> 62.4 MB; on the test split 0.03% of the tokens become [UNK]
and 2.3% are tokens the pruned vocabulary lacks (nearly all re-split from kept pieces). min_count=2 keeps 8,249
(12.7 MB, 0.05% [UNK]), min_count=3 keeps 6,257 (9.6 MB, 0.13% [UNK]).

Models: any model whose input embedding is an `nn.Embedding` (BERT-style encoders, with any head). An output
embedding (an MLM decoder, tied or not) is pruned to the same rows along with its bias. A model that still holds
some other tensor sized by the vocabulary is refused, as is an int8 model.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from ..errors import BertliteError

METHOD = "vocabulary_pruning"
VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
# Config fields that hold token ids: they must stay in the vocabulary and follow the remapping.
CONFIG_TOKEN_ID_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
                          "mask_token_id", "unk_token_id", "decoder_start_token_id")


@dataclass
class VocabularyPruningReport:
    original_size: int  # rows of the embedding table before
    kept_size: int  # rows after
    from_texts: int  # distinct tokens of the texts that were kept (seen at least min_count times)
    always_kept: int  # special, added, config and keep_tokens ids kept whatever the texts hold
    min_count: int
    hidden_size: int
    embedding_mb_before: float  # the word-embedding table alone, fp32 as stored, in MB (10^6 bytes)
    embedding_mb_after: float
    unk_share: float | None = None  # on the test texts, when given (see `unk_share`)
    pruned_token_share: float | None = None  # on the test texts: removed tokens, re-split or [UNK] (see there)

    def to_dict(self) -> dict:
        return asdict(self)


# ----- which tokens to keep -----
def _as_strings(texts, what: str) -> list[str]:
    """Texts as a flat list of strings; a pair (text, text_pair) counts as its two segments, since WordPiece
    splits each segment on its own."""
    if texts is None:
        return []
    if isinstance(texts, str):
        raise BertliteError(f"{what} must be a list of texts, not a single string.")
    flat = []
    for item in texts:
        if isinstance(item, str):
            flat.append(item)
        elif isinstance(item, (tuple, list)) and all(isinstance(s, str) or s is None for s in item):
            flat.extend(s for s in item if s)
        else:
            raise BertliteError(f"{what} must hold strings or (text, text_pair) pairs; found {type(item).__name__}.")
    return flat


def count_tokens(tokenizer, texts: Iterable[str], batch_size: int = 1000) -> Counter:
    """How often each token id occurs in the texts (special tokens of the template not counted)."""
    counts: Counter = Counter()
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], add_special_tokens=False, truncation=False)["input_ids"]
        for ids in batch:
            counts.update(ids)
    return counts


def _always_kept_ids(model, tokenizer, keep_tokens) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids.update(tokenizer.added_tokens_decoder)  # [PAD], [UNK], ... and tokens the user added
    for name in CONFIG_TOKEN_ID_FIELDS:
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value >= 0:
            ids.add(value)
    if keep_tokens:
        vocab = tokenizer.get_vocab()
        missing = [t for t in keep_tokens if t not in vocab]
        if missing:
            raise BertliteError(f"keep_tokens names tokens the vocabulary does not have: {missing[:5]}. "
                                "Pass tokens as the tokenizer writes them (e.g. 'movie', '##s').")
        ids.update(vocab[t] for t in keep_tokens)
    return ids


def kept_token_ids(model, tokenizer, texts, *, extra_texts=None, keep_tokens=None, min_count: int = 1):
    """Sorted ids to keep, and how many came from the texts / were kept regardless."""
    if min_count < 1:
        raise BertliteError(f"min_count must be at least 1, not {min_count}.")
    strings = _as_strings(texts, "texts") + _as_strings(extra_texts, "extra_texts")
    if not strings:
        raise BertliteError("No texts to take the vocabulary from: pass the task's training texts.")
    counts = count_tokens(tokenizer, strings)
    seen = {i for i, n in counts.items() if n >= min_count}
    always = _always_kept_ids(model, tokenizer, keep_tokens)
    return sorted(seen | always), len(seen - always), len(always)


# ----- the model -----
def _embedding(model):
    from torch import nn

    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if getattr(model, "bertlite_quantization", None) is not None:
        raise BertliteError("This model is already int8: prune the vocabulary of its fp32 model, then quantize.")
    if not isinstance(embedding, nn.Embedding):
        raise BertliteError(f"{type(model).__name__} has no nn.Embedding input embedding to prune "
                            f"(found {type(embedding).__name__}).")
    return embedding


def _select_rows(tensor, index):
    """A fresh leaf tensor holding the selected rows (index_select copies: the old table itself is never written)."""
    return tensor.detach().index_select(0, index.to(tensor.device)).clone()


def _prune_output_embedding(model, old_weight, new_embedding, index) -> None:
    """An MLM decoder (or any output embedding) predicts over the vocabulary: keep the same rows, and keep a tied
    decoder tied to the new input table."""
    from torch import nn

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is None:
        return
    if not isinstance(output, nn.Linear):
        raise BertliteError(f"The output embedding is a {type(output).__name__}, which vocabulary pruning cannot resize.")
    tied = output.weight is old_weight or output.weight.data_ptr() == old_weight.data_ptr()
    decoder = nn.Linear(output.in_features, new_embedding.num_embeddings, bias=output.bias is not None,
                        device=output.weight.device, dtype=output.weight.dtype)
    decoder.weight = new_embedding.weight if tied else nn.Parameter(_select_rows(output.weight, index))
    if output.bias is not None:
        decoder.bias = nn.Parameter(_select_rows(output.bias, index))
    model.set_output_embeddings(decoder)  # BERT's MLM head also points its own `bias` at the decoder's


def _vocab_sized_tensors(model, original_size: int) -> list[str]:
    """Tensors sized by the vocabulary other than the ones vocabulary pruning resizes (the input embedding, the
    output embedding and its bias, by storage, since heads keep second references to them)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    handled = {model.get_input_embeddings().weight.data_ptr()}
    if output is not None:
        handled.update(t.data_ptr() for t in (output.weight, getattr(output, "bias", None)) if t is not None)
    tensors = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    return [n for n, t in tensors if t.dim() >= 1 and t.shape[0] == original_size and t.data_ptr() not in handled]


def _refuse_vocab_tensors(model, original_size: int) -> None:
    """A tensor still sized by the old vocabulary would index with the old ids: refuse rather than run wrong."""
    left = _vocab_sized_tensors(model, original_size)
    if left:
        raise BertliteError(f"{type(model).__name__} holds tensors sized by the vocabulary that vocabulary pruning "
                            f"does not know how to resize: {left[:3]}. Prune a model with a task head or an MLM head.")


def _prune_model(model, kept: list[int]) -> None:
    import torch
    from torch import nn

    old = _embedding(model)
    index = torch.tensor(kept, dtype=torch.long)
    new_id = {old_id: new for new, old_id in enumerate(kept)}
    padding_idx = new_id.get(old.padding_idx) if old.padding_idx is not None else None
    embedding = nn.Embedding(len(kept), old.embedding_dim, padding_idx=padding_idx, device=old.weight.device,
                             dtype=old.weight.dtype)
    embedding.weight = nn.Parameter(_select_rows(old.weight, index))  # the [PAD] row as it was, not zeroed
    model.set_input_embeddings(embedding)
    _prune_output_embedding(model, old.weight, embedding, index)
    _refuse_vocab_tensors(model, old.num_embeddings)  # after too: nothing was missed by the resizing
    model.config.vocab_size = len(kept)
    for name in CONFIG_TOKEN_ID_FIELDS:
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value >= 0:
            setattr(model.config, name, new_id[value])


# ----- the tokenizer -----
def _backend_state(tokenizer) -> dict:
    if not getattr(tokenizer, "is_fast", False) or not hasattr(tokenizer, "backend_tokenizer"):
        raise BertliteError("Vocabulary pruning needs a fast tokenizer (tokenizer.json): load it with "
                            "AutoTokenizer.from_pretrained(..., use_fast=True).")
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    if state.get("model", {}).get("type") != "WordPiece":
        raise BertliteError(f"Vocabulary pruning handles WordPiece tokenizers (BERT); this one is "
                            f"{state.get('model', {}).get('type')!r}.")
    return state


def _remap_post_processor(processor, new_id: dict) -> None:
    """[CLS]/[SEP] ids are written into the post-processor; they must follow the remapping."""
    if not processor:
        return
    kind = processor.get("type")
    if kind == "TemplateProcessing":
        for special in processor.get("special_tokens", {}).values():
            special["ids"] = [new_id[i] for i in special["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            processor[key] = [processor[key][0], new_id[processor[key][1]]]
    elif kind == "Sequence":
        for inner in processor.get("processors", []):
            _remap_post_processor(inner, new_id)
    elif kind != "ByteLevel":
        raise BertliteError(f"Unknown tokenizer post-processor {kind!r}: cannot remap its special-token ids.")


def pruned_tokenizer_state(state: dict, kept: list[int]) -> dict:
    """tokenizer.json content for the kept ids: WordPiece vocabulary, added tokens, post-processor, padding."""
    new_id = {old_id: new for new, old_id in enumerate(kept)}
    vocab = state["model"]["vocab"]
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise BertliteError("The tokenizer's WordPiece vocabulary has gaps in its ids; it cannot be pruned safely.")
    kept_vocab = {tok: new_id[i] for tok, i in vocab.items() if i in new_id}
    # Added tokens outside the WordPiece vocabulary get ids after it when the tokenizer loads: they must be last.
    extra = [t["id"] for t in state.get("added_tokens", []) if t["content"] not in vocab]
    if extra and min(new_id[i] for i in extra) < len(kept_vocab):
        raise BertliteError("An added token has an id inside the WordPiece vocabulary's range; cannot prune this tokenizer.")
    state = json.loads(json.dumps(state))  # a deep copy: the caller's tokenizer stays as it was
    state["model"]["vocab"] = kept_vocab
    for token in state.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _remap_post_processor(state.get("post_processor"), new_id)
    if state.get("padding"):
        state["padding"]["pad_id"] = new_id[state["padding"]["pad_id"]]
    return state


def _write_tokenizer_files(folder: str, state: dict, kept_tokens: list[str]) -> None:
    with open(os.path.join(folder, TOKENIZER_FILE), "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False, indent=2)
    # vocab.txt too: a slow BertTokenizer (or an older Transformers) builds itself from it.
    wordpiece = sorted(state["model"]["vocab"].items(), key=lambda kv: kv[1])
    with open(os.path.join(folder, VOCAB_FILE), "w", encoding="utf-8") as f:
        f.writelines(tok + "\n" for tok, _ in wordpiece)
    config_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(config_path):  # Transformers 4 writes added tokens there keyed by id
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        if "added_tokens_decoder" in config:
            config["added_tokens_decoder"] = {str(kept_tokens.index(v["content"])): v
                                              for v in config["added_tokens_decoder"].values()}
            with open(config_path, "w", encoding="utf-8") as f:
                json.dump(config, f, ensure_ascii=False, indent=2)


def _prune_tokenizer(tokenizer, kept: list[int]):
    """Write the pruned tokenizer to a scratch folder and load it back with AutoTokenizer, so the returned
    tokenizer is exactly what `AutoTokenizer.from_pretrained(output folder)` will give."""
    from transformers import AutoTokenizer

    state = pruned_tokenizer_state(_backend_state(tokenizer), kept)
    kept_tokens = tokenizer.convert_ids_to_tokens(kept)
    with tempfile.TemporaryDirectory(prefix="bertlite-vocab-") as scratch:
        tokenizer.save_pretrained(scratch)
        _write_tokenizer_files(scratch, state, kept_tokens)
        pruned = AutoTokenizer.from_pretrained(scratch)
    pruned.name_or_path = tokenizer.name_or_path
    got = pruned.convert_tokens_to_ids(kept_tokens)
    if got != list(range(len(kept))) or len(pruned) != len(kept):
        raise BertliteError("The rewritten tokenizer does not give the kept tokens their new ids; "
                            "this tokenizer's layout is not supported by vocabulary pruning.")
    return pruned


# ----- public API -----
def prune_vocabulary(model, tokenizer, texts, *, extra_texts=None, keep_tokens: Sequence[str] | None = None,
                     min_count: int = 1):
    """Prune `model` (in place) and return (model, new tokenizer, VocabularyPruningReport).

    texts: the task's training texts (strings or (text, text_pair) pairs); extra_texts: e.g. a corpus whose
    tokens should survive too; keep_tokens: tokens (as the tokenizer writes them) to keep regardless;
    min_count: keep a token only if it occurs at least this often in texts + extra_texts.
    """
    embedding = _embedding(model)
    original = embedding.num_embeddings
    if len(tokenizer) > original:
        raise BertliteError(f"The tokenizer has {len(tokenizer)} tokens but the model's embedding only {original} "
                            "rows: they do not belong together.")
    _refuse_vocab_tensors(model, original)  # before any change: a refusal leaves model and tokenizer intact
    kept, from_texts, always = kept_token_ids(model, tokenizer, texts, extra_texts=extra_texts,
                                              keep_tokens=keep_tokens, min_count=min_count)
    new_tokenizer = _prune_tokenizer(tokenizer, kept)  # before touching the model, which it may refuse
    bytes_per_row = embedding.embedding_dim * embedding.weight.element_size()
    _prune_model(model, kept)
    report = VocabularyPruningReport(
        original_size=original, kept_size=len(kept), from_texts=from_texts, always_kept=always, min_count=min_count,
        hidden_size=embedding.embedding_dim, embedding_mb_before=round(original * bytes_per_row / 1e6, 3),
        embedding_mb_after=round(len(kept) * bytes_per_row / 1e6, 3))
    return model, new_tokenizer, report


def unk_share(tokenizer_before, tokenizer_after, texts) -> float:
    """Share of the texts' tokens (as `tokenizer_before` splits them, specials excluded) that fall inside an [UNK]
    of `tokenizer_after` and were not [UNK] already. Matched by character offsets, since a word that lost a
    piece may become one [UNK] in place of several tokens."""
    strings = _as_strings(texts, "texts")
    before = tokenizer_before(strings, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    after = tokenizer_after(strings, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    unk_before, unk_after = tokenizer_before.unk_token_id, tokenizer_after.unk_token_id
    total = became_unk = 0
    for ids_b, offs_b, ids_a, offs_a in zip(before["input_ids"], before["offset_mapping"], after["input_ids"],
                                            after["offset_mapping"]):
        unk_spans = [span for i, span in zip(ids_a, offs_a) if i == unk_after]
        total += len(ids_b)
        for i, (start, end) in zip(ids_b, offs_b):
            if i != unk_before and any(s <= start and end <= e for s, e in unk_spans):
                became_unk += 1
    return became_unk / total if total else 0.0


def pruned_token_share(tokenizer_before, tokenizer_after, texts) -> float:
    """Share of the texts' tokens (as `tokenizer_before` splits them, specials excluded) that the pruned vocabulary
    lacks: each is either re-split into kept pieces or inside an [UNK], so the model sees different input there.
    Always at least `unk_share`."""
    strings = _as_strings(texts, "texts")
    kept = set(tokenizer_after.get_vocab())
    tokens = [tokenizer_before.convert_ids_to_tokens(ids)
              for ids in tokenizer_before(strings, add_special_tokens=False, truncation=False)["input_ids"]]
    total = sum(len(t) for t in tokens)
    return sum(tok not in kept for t in tokens for tok in t) / total if total else 0.0


def task_texts(task: str, split: str = "train") -> list:
    """A task's texts for a split (pairs for pair tasks), via bertlite.data.load_task."""
    from ..data import load_task

    dsd, _ = load_task(task)
    if split not in dsd:
        raise BertliteError(f"Task {task!r} has no {split!r} split; it has {', '.join(dsd)}.")
    data = dsd[split]
    if "text_pair" in data.column_names:
        return list(zip(data["text"], data["text_pair"]))
    return list(data["text"])


def prune_vocabulary_folder(model_dir: str, output_dir: str, texts, *, texts_source: str | None = None,
                            extra_texts=None, extra_source: str | None = None, keep_tokens=None, min_count: int = 1,
                            test_texts=None):
    """Load a saved fp32 model folder (or alias), prune its vocabulary, and write `output_dir` atomically.

    texts_source / extra_source: where the texts came from (e.g. "rotten_tomatoes train"), for the record.
    test_texts: when given, the unk share and the pruned-token share on them go into the report and the record.
    Returns (output_dir, VocabularyPruningReport).
    """
    from ..evaluation import folder_size_mb
    from ..jobs import save_model_folder
    from ..record import CompressionConfig
    from ..loading import display_name, load_tokenizer, resolve_model_name
    from ..loading import load_model as load_fp32_model

    source = resolve_model_name(model_dir)
    output_dir = os.path.abspath(os.fspath(output_dir))
    if os.path.isdir(source) and os.path.abspath(source) == output_dir:
        raise BertliteError("The output folder must differ from the model folder: the model folder is the input.")
    model = load_fp32_model(model_dir)
    tokenizer = load_tokenizer(model_dir)
    model, pruned_tokenizer, report = prune_vocabulary(model, tokenizer, texts, extra_texts=extra_texts,
                                                       keep_tokens=keep_tokens, min_count=min_count)
    if test_texts is not None:
        report.unk_share = round(unk_share(tokenizer, pruned_tokenizer, test_texts), 6)
        report.pruned_token_share = round(pruned_token_share(tokenizer, pruned_tokenizer, test_texts), 6)

    history = CompressionConfig.load_or_new(source if os.path.isdir(source) else None, base_model=display_name(model_dir))
    history.add_step(METHOD, original_vocab_size=report.original_size, kept_vocab_size=report.kept_size,
                     min_count=min_count, texts=texts_source, extra_texts=extra_source,
                     keep_tokens=len(keep_tokens or ()), unk_share_test=report.unk_share,
                     pruned_token_share_test=report.pruned_token_share)

    def write(staged: str) -> None:  # the rewritten tokenizer files, then the size of the weights as written
        pruned_tokenizer.save_pretrained(staged)
        _write_tokenizer_files(staged, json.loads(pruned_tokenizer.backend_tokenizer.to_str()),
                               pruned_tokenizer.convert_ids_to_tokens(list(range(report.kept_size))))
        sizes = {"fp32_mb_before": round(folder_size_mb(source), 2) if os.path.isdir(source) else None,
                 "fp32_mb_after": round(folder_size_mb(staged), 2)}
        history.metrics[METHOD] = {**report.to_dict(), **sizes}

    # The one atomic result writer (bertlite.jobs): an interrupted write leaves the old folder or one loaders refuse.
    save_model_folder(output_dir, model, record=history, write=write)
    return output_dir, report


def prune_task_vocabulary(model_dir: str, output_dir: str, task: str, *, min_count: int = 1, split: str = "train",
                          log=print):
    """What `bertlite prune --vocabulary` and compress's vocabulary stage run: keep the tokens of the task's
    training split, report the test tokens that become [UNK]. Returns (output_dir, VocabularyPruningReport)."""
    if min_count < 1:
        raise BertliteError(f"--vocabulary_min_count must be >= 1, got {min_count}.")
    output_dir, report = prune_vocabulary_folder(model_dir, output_dir, task_texts(task, split),
                                                 texts_source=f"{task} {split}", min_count=min_count,
                                                 test_texts=task_texts(task, "test"))
    log(f"Vocabulary: kept {report.kept_size:,} of {report.original_size:,} tokens (seen >= {min_count}x in {task} "
        f"{split}); word embeddings {report.embedding_mb_before:.1f} -> {report.embedding_mb_after:.1f} MB fp32; "
        f"{100 * (report.unk_share or 0):.2f}% of test tokens now [UNK]. Saved to {output_dir}.")
    return output_dir, report
