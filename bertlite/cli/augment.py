"""`bertlite augment`: TinyBERT-style word-replacement augmentation of a task's training data."""

from __future__ import annotations

from ..augmentation.job import AugmentArguments, run_augmentation

HELP = "Augment a task's training data by word replacement (TinyBERT) for `bertlite distill --augmented PATH`."

DATACLASSES = (AugmentArguments,)


def run(args: AugmentArguments) -> int:
    run_augmentation(args)
    print(f"\nUse it with: bertlite distill --task {args.task} --augmented {args.output_dir}")
    return 0
