"""Write a model folder with bert-base-uncased's shape and random weights (no download needed).

No bert-base weights exist offline, but its shape does: 12 layers, hidden 768, 12 heads, FFN 3072, 512 positions,
2 token types and the uncased 30,522-token WordPiece vocabulary, which is exactly the packaged MiniLM's tokenizer.
A folder like this takes every code path a real bert-base takes in bertlite except the download, so the slow test
(tests/test_bert_base_chain.py) and scripts/bench_scale.py build their teacher with it.

    python scripts/make_bert_base_shape.py OUT_DIR [--shape bert-large] [--head encoder]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

# The published configs of google-bert/bert-base-uncased and bert-large-uncased (only what differs from BertConfig's
# defaults is spelled out; BertConfig's defaults are bert-base's).
SHAPES = {
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
}
# The student shapes of the papers: DistilBERT keeps every other teacher layer at full width; TinyBERT-4 is 4 x 312
# with a 1200 FFN and 12 heads, randomly initialised and mapped to the teacher's width by learned projections.
STUDENTS = {
    "distilbert-6": dict(num_layers=6),
    "tinybert-4": dict(num_layers=4, hidden_size=312, intermediate_size=1200, num_attention_heads=12),
}


def bert_shape_config(shape: str = "bert-base", num_labels: int = 2):
    """A BertConfig with `shape`'s dimensions and bert-base-uncased's vocabulary/positions/token types."""
    from transformers import BertConfig

    if shape not in SHAPES:
        raise SystemExit(f"Unknown shape {shape!r}: choose one of {', '.join(SHAPES)}.")
    return BertConfig(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, num_labels=num_labels,
                      **SHAPES[shape])


def build_bert_shape(shape: str = "bert-base", head: str = "classifier", num_labels: int = 2, seed: int = 0):
    """The model, randomly initialised with `seed`: a sequence classifier (`head='classifier'`) or a bare encoder."""
    from transformers import BertForSequenceClassification, BertModel

    config = bert_shape_config(shape, num_labels)
    torch.manual_seed(seed)
    cls = {"classifier": BertForSequenceClassification, "encoder": BertModel}[head]
    return cls(config).eval()


def make_bert_shape_folder(folder, shape: str = "bert-base", head: str = "classifier", num_labels: int = 2,
                           seed: int = 0) -> Path:
    """Save `build_bert_shape(...)` with the packaged MiniLM tokenizer (safetensors) into `folder`; returns it."""
    from bertlite.loading import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    folder = Path(folder)
    model = build_bert_shape(shape, head, num_labels, seed)
    assert tokenizer.vocab_size == model.config.vocab_size, "the packaged tokenizer is not the uncased 30,522 vocabulary"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--shape", default="bert-base", choices=sorted(SHAPES))
    parser.add_argument("--head", default="classifier", choices=["classifier", "encoder"])
    parser.add_argument("--num_labels", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = make_bert_shape_folder(args.output_dir, args.shape, args.head, args.num_labels, args.seed)
    print(f"Wrote a randomly initialised {args.shape}-shaped {args.head} to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
