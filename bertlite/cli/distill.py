"""`bertlite distill`: train a smaller student against a teacher."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..config import DistillationConfig
from ..distill import DistillArguments, run_distillation
from ..general import GeneralArguments, run_general_distillation
from ..hub.metrics import invoked_command, record_command
from ..hub.push import PushOptions, push_if_requested

HELP = "Distil a teacher into a smaller student on a task (default: packaged MiniLM on rotten_tomatoes)."


@dataclass
class DistillTrainingArguments(DistillationConfig):
    """DistillationConfig with defaults for a command-line run: evaluate and checkpoint every epoch."""

    output_dir: str = field(default="bertlite-distilled", metadata={"help": "Folder for the student, its tokenizer, metrics.json, the fine-tuned teacher (teacher/) and checkpoints (checkpoints/)."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Distillation epochs (2 keeps the default run within 15 minutes on 2 CPU cores)."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate of the student."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Training batch size per device."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size per device."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up: steps, or a fraction of training when < 1."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on the validation split: 'no', 'steps' or 'epoch'."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint: 'no', 'steps' or 'epoch' (Ctrl-C always checkpoints)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoints."})
    logging_steps: float = field(default=25, metadata={"help": "Log the loss and each loss component every N steps."})
    # Sentences of a batch padded to similar lengths: about half the padded tokens of random batches on
    # rotten_tomatoes, which is what keeps the default run within 15 minutes on 2 CPU cores.
    train_sampling_strategy: str = field(default="group_by_length", metadata={
        "help": "Training sampler: 'group_by_length' (default: shuffled batches of similar lengths, less padding), 'random', "
                "'sequential' or 'batch_rebalance'.", "choices": ["random", "sequential", "group_by_length", "batch_rebalance"]})


DATACLASSES = (DistillArguments, DistillTrainingArguments, PushOptions, GeneralArguments)


def run(args: DistillArguments, config: DistillTrainingArguments, push: PushOptions, general: GeneralArguments | None = None) -> int:
    # --hub_token (a TrainingArguments field) is only ever used for the push: keep it out of the arguments the Trainer
    # pickles into every checkpoint (training_args.bin).
    token, config.hub_token = config.hub_token, None
    if general is not None and general.general:
        run_general_distillation(args, general, config)
    else:
        run_distillation(args, config)
    record_command(config.output_dir, invoked_command("distill"))  # the model card shows how to reproduce the numbers
    print(f"\nStudent saved to {config.output_dir} (metrics in {config.output_dir}/metrics.json).")
    if general is not None and general.general:
        teacher = f" --teacher {os.path.join(config.output_dir, 'teacher')}" if general.teacher_task else ""
        print(f"Start task distillation from it with: bertlite distill{teacher} --student {config.output_dir}")
    push_if_requested(config.output_dir, push, **({"token": token} if token else {}))
    return 0
