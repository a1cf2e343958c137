"""The `bertlite augment` job: task split -> word-replacement variants -> a dataset on disk that
`bertlite distill --augmented PATH` adds to its training data."""

from __future__ import annotations

import os
import time

from ..record import VERSION as __version__
from ..errors import BertliteError
from ..loading import display_name, load_model, load_tokenizer
from .augmenter import WordAugmenter
from .candidates import EmbeddingNeighbours, MaskedLMCandidates
from .dataset import RECORD_FILE, augment_dataset, save_augmented


def build_augmenter(args, tokenizer) -> WordAugmenter:
    import torch

    teacher = load_model(args.teacher, head="encoder", trust_remote_code=args.trust_remote_code)  # for its embeddings
    neighbours = EmbeddingNeighbours.from_model(teacher, tokenizer, args.top_k)
    del teacher
    mlm = None
    if args.mlm:
        if load_tokenizer(args.mlm, args.trust_remote_code).get_vocab() != tokenizer.get_vocab():
            raise BertliteError(f"The MLM {args.mlm!r} has another vocabulary than the teacher {args.teacher!r}: "
                                "replacements must be tokens of the teacher's tokenizer.")
        model = load_model(args.mlm, head="masked_lm", trust_remote_code=args.trust_remote_code)
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        mlm = MaskedLMCandidates(model, tokenizer, neighbours.allowed, args.top_k, args.batch_size, args.max_length)
    return WordAugmenter(tokenizer, neighbours, mlm, args.num_variants, args.probability, args.seed)


def run_augmentation(args, log=print) -> dict:
    """Augments the split and saves it to `args.output_dir`; returns the record written beside it."""
    from ..data import load_task

    if os.path.isfile(os.path.join(args.output_dir, RECORD_FILE)) and not args.overwrite:
        raise BertliteError(f"{args.output_dir} already holds an augmented dataset: pass --overwrite to replace it, or another --output_dir.")
    dsd, info = load_task(args.task, text_column=args.text_column, text_pair_column=args.text_pair_column, label_column=args.label_column)
    if args.split not in dsd:
        raise BertliteError(f"Task {info.name!r} has no split {args.split!r}; it has {', '.join(dsd)}.")
    data = dsd[args.split]
    if args.max_examples:
        data = data.select(range(min(args.max_examples, len(data))))
    tokenizer = load_tokenizer(args.teacher, args.trust_remote_code)
    augmenter = build_augmenter(args, tokenizer)
    source = f"masked LM {display_name(args.mlm)} (single-piece words) + embedding neighbours" if args.mlm else "embedding neighbours"
    log(f"Augmenting {len(data)} {args.split} examples of {info.name}: {args.num_variants} variants each, "
        f"p={args.probability}, top-{args.top_k} candidates from {source} of {display_name(args.teacher)}.")
    started = time.perf_counter()
    augmented = augment_dataset(data, augmenter)
    seconds = time.perf_counter() - started
    record = {
        "bertlite_version": __version__, "task": args.task, "task_source": info.source, "split": args.split,
        "examples": len(data), "augmented_examples": len(augmented), "pairs": "text_pair" in data.column_names,
        "teacher": display_name(args.teacher), "mlm": display_name(args.mlm) if args.mlm else None,
        "num_variants": args.num_variants, "probability": args.probability, "top_k": args.top_k, "seed": args.seed,
        "max_examples": args.max_examples, "stats": augmenter.stats.to_dict(), "seconds": round(seconds, 2),
        "examples_per_second": round(len(data) / max(seconds, 1e-9), 2),
    }
    save_augmented(augmented, args.output_dir, record)
    log(f"Wrote {len(augmented)} augmented examples to {args.output_dir} in {seconds:.1f}s "
        f"({record['examples_per_second']:.1f} source examples/s; "
        f"{100 * augmenter.stats.replaced_fraction:.1f}% of replaceable words replaced).")
    return record
