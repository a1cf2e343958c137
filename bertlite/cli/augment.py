"""`bertlite augment`: TinyBERT-style word-replacement augmentation of a task's training data."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..augmentation.job import run_augmentation
from ..errors import BertliteError
from ..loading import DEFAULT_TEACHER

HELP = "Augment a task's training data by word replacement (TinyBERT) for `bertlite distill --augmented PATH`."


@dataclass
class AugmentArguments:
    task: str = field(default="rotten_tomatoes", metadata={"help": "Task whose split is augmented: 'rotten_tomatoes' or 'imdb' (offline), a GLUE task, a Hub dataset id, or a local .csv/.json/.jsonl file."})
    split: str = field(default="train", metadata={"help": "Split to augment. Only augment training data: variants of test sentences would leak into training."})
    output_dir: str = field(default="bertlite-augmented", metadata={"help": "Folder for the augmented dataset (datasets.save_to_disk) and bertlite_augmentation.json."})
    teacher: str = field(default=DEFAULT_TEACHER, metadata={"help": "Model whose tokenizer the data is for and whose input embeddings give nearest-neighbour replacements (default: packaged MiniLM)."})
    mlm: str | None = field(default=None, metadata={"help": "Masked language model (folder or Hub id, same vocabulary as the teacher) proposing replacements for single-piece words in context, as in TinyBERT. Default: embedding neighbours only (offline)."})
    num_variants: int = field(default=4, metadata={"help": "Variants made per example (TinyBERT used 20; duplicates are dropped)."})
    probability: float = field(default=0.4, metadata={"help": "Probability that each replaceable word is replaced in a variant."})
    top_k: int = field(default=15, metadata={"help": "Candidates per word (MLM top-k or nearest neighbours); one is drawn uniformly."})
    seed: int = field(default=42, metadata={"help": "Random seed: the same seed and data give the same variants."})
    max_examples: int | None = field(default=None, metadata={"help": "Augment only the first N examples of the split (quick runs)."})
    batch_size: int = field(default=64, metadata={"help": "Masked copies per MLM forward pass (with --mlm)."})
    max_length: int = field(default=128, metadata={"help": "Context window in tokens for the MLM (with --mlm)."})
    text_column: str = field(default="text", metadata={"help": "Text column for local files / Hub datasets."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Second-sentence column for pair tasks in local files / Hub datasets."})
    label_column: str = field(default="label", metadata={"help": "Label column for local files / Hub datasets."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing augmented dataset in output_dir."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom code from the model repos. Off by default."})

    def __post_init__(self):
        if self.num_variants < 1:
            raise BertliteError(f"num_variants must be >= 1, got {self.num_variants}.")
        if not 0 < self.probability <= 1:
            raise BertliteError(f"probability must be in (0, 1], got {self.probability}.")
        for name in ("top_k", "batch_size"):
            if getattr(self, name) < 1:
                raise BertliteError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_examples is not None and self.max_examples < 1:
            raise BertliteError(f"max_examples must be >= 1, got {self.max_examples}.")
        if self.max_length < 8:
            raise BertliteError(f"max_length must be at least 8, got {self.max_length}.")


DATACLASSES = (AugmentArguments,)


def run(args: AugmentArguments) -> int:
    run_augmentation(args)
    print(f"\nUse it with: bertlite distill --task {args.task} --augmented {args.output_dir}")
    return 0
