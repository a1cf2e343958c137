"""General distillation (TinyBERT stage 1): a student encoder learns the teacher's embeddings, hidden states and
attention maps on unlabeled text; no labels, no prediction layer. The result is a plain BertModel checkpoint that
task distillation starts from (`bertlite distill --student PATH`)."""

from __future__ import annotations

import os
import time

from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from ..jobs import CHECKPOINTS, check_job, finish_job, record_job, result_settings, run_training, save_model_folder
from ..record import CompressionConfig
from .config import DistillationConfig
from ..errors import BertliteError
from ..loading import display_name, load_model, load_tokenizer
from .corpus import unlabeled_corpus



def _prepare_config(config: DistillationConfig, log) -> None:
    """General distillation has no labels and no prediction layer, and its corpus has no length: adjust the
    training arguments accordingly, loudly."""
    if config.max_steps is None or config.max_steps <= 0:
        raise BertliteError("General distillation streams its corpus, so it runs for a fixed number of steps: pass --max_steps (e.g. 2000).")
    if config.logit_weight or config.hard_label_weight:
        log("General distillation has no labels and no prediction layer: the logit and hard-label losses are off.")
        config.logit_weight = config.hard_label_weight = 0.0
    if config.intermediate_weight == 0:
        raise BertliteError("General distillation needs an intermediate loss: set --embedding_weight, --hidden_weight, "
                            "--attention_weight or --relation_weight > 0.")
    if config.two_stage:
        raise BertliteError("--two_stage is for task distillation; general distillation has only the intermediate stage.")
    config.eval_strategy = IntervalStrategy.NO  # nothing to evaluate: there is no task
    config.do_eval = False
    if config.save_strategy == SaveStrategy.EPOCH:  # an endless stream has no epochs
        config.save_strategy = SaveStrategy.STEPS


def build_general_student(args, teacher):
    """The student encoder and how it was initialised: a given checkpoint (to continue general distillation) or one
    built from the teacher."""
    from .student import build_student, check_same_vocabulary, student_init

    if args.student:
        student = load_model(args.student_path, head="encoder", trust_remote_code=args.trust_remote_code)
        check_same_vocabulary(student.config, teacher.config)
        return student, {"from": display_name(args.student)}
    shape = dict(num_layers=args.student_layers if args.layer_ids is None else None, layer_ids=args.layer_ids,
                 hidden_size=args.student_hidden_size, intermediate_size=args.student_intermediate_size,
                 num_attention_heads=args.student_heads, seed=0)
    return build_student(teacher, **shape), student_init(teacher.config, **shape)


def run_general_distillation(args, general, config: DistillationConfig, log=print) -> dict:
    """`args` and `general` are the command's `bertlite.cli.distill.DistillArguments` (teacher, student shape, max_length)
    and `GeneralArguments` (corpus). Returns the metrics
    written to `<output_dir>/metrics.json`."""
    from transformers import DataCollatorWithPadding

    from .job import check_shapes_early, describe_shape, task_teacher
    from .teacher import teacher_dir
    from ..hub.callback import ModelCardCallback
    from .trainer import DistillationTrainer

    _prepare_config(config, log)
    check_shapes_early(args, config)
    output_dir = config.output_dir
    # Before any work: a re-run with another recipe stops here instead of resuming it (bertlite.jobs re-run rules).
    settings = result_settings(args, general, config)
    resumable = check_job(output_dir, settings, fresh=args.fresh)
    source, teacher_name = args.teacher_path, args.teacher_name
    if general.teacher_task:
        source, fine_tuned = task_teacher(args, general.teacher_task, teacher_dir(output_dir), config.seed, log)
        if fine_tuned:
            teacher_name = f"{teacher_name} fine-tuned on {general.teacher_task}"
    tokenizer = load_tokenizer(source, trust_remote_code=args.trust_remote_code)
    # The encoder only: the pre-trained model (TinyBERT) or, in-domain, a task fine-tune's (its head is unused).
    teacher = load_model(source, head="encoder", trust_remote_code=args.trust_remote_code)
    student, init = build_general_student(args, teacher)
    log(f"Teacher: {describe_shape(teacher)}")
    log(f"Student: {describe_shape(student)}")
    corpus = unlabeled_corpus(tokenizer, general.corpus, max_length=args.max_length, text_column=general.corpus_text_column,
                              split=general.corpus_split, max_texts=general.corpus_max_texts,
                              shuffle_buffer=general.shuffle_buffer, seed=config.seed)
    log(f"General distillation on {general.corpus!r} for {config.max_steps} steps of {config.per_device_train_batch_size} "
        f"sequences (<= {args.max_length} tokens), losses: embedding {config.embedding_weight:g}, hidden {config.hidden_weight:g}, "
        f"attention {config.attention_weight:g}, relation {config.relation_weight:g}.")

    record_job(output_dir, "general distillation", settings)
    config.output_dir = os.path.join(output_dir, CHECKPOINTS)
    card_callback = ModelCardCallback()
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config, train_dataset=corpus,
                                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                                  callbacks=[card_callback])
    started = time.perf_counter()
    try:
        result = run_training(trainer, fresh=args.fresh or not resumable, what="general distillation", log=log)
    finally:
        config.output_dir = output_dir

    student = trainer.student
    student.config.architectures = [type(student).__name__]
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
    record = CompressionConfig.load_or_new(None, base_model=args.teacher_name, task=None, dataset=general.corpus)
    record.add_step("general_distillation", teacher=teacher_name, student_shape=describe_shape(student),
                    student_init=init, corpus=general.corpus,
                    steps=trainer.state.global_step, max_length=args.max_length,
                    **{k: getattr(config, k) for k in ("embedding_weight", "hidden_weight", "attention_weight",
                                                        "relation_weight", "relation_heads", "layer_map",
                                                        "hidden_loss", "attention_loss", "learning_rate",
                                                        "per_device_train_batch_size", "seed")})
    # safetensors; loads with AutoModel or, with a fresh head, AutoModelFor...
    save_model_folder(output_dir, student, tokenizer, record, metrics)
    finish_job(output_dir)
    g = metrics["general_distillation"]
    loss = (f"loss {g['first_logged_loss']:.3f} -> {g['last_logged_loss']:.3f}" if losses
            else f"loss not logged: fewer steps than --logging_steps {config.logging_steps:g}")
    log(f"General student ({g['steps']} steps, {g['sequences_seen']} sequences, {loss}) saved to {output_dir}.")
    return metrics
