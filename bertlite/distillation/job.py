"""The `bertlite distill` job: task data -> fine-tuned teacher -> student -> DistillationTrainer -> saved student
with metrics. Usable from Python as `run_distillation(DistillArguments(...), DistillationConfig(...))`, with the
command's argument dataclass `bertlite.cli.distill.DistillArguments`."""

from __future__ import annotations

import os

import torch
from transformers import DataCollatorWithPadding

from ..jobs import CHECKPOINTS, check_job, finish_job, record_job, result_settings, run_training, save_model_folder
from ..record import CompressionConfig
from .config import DistillationConfig, distillation_params
from ..data import load_task, tokenize
from ..errors import BertliteError
from ..evaluation import compare_latency, count_parameters, folder_size_mb
from ..metrics import evaluate_splits, metric_spec, trainer_compute_metrics
from ..loading import display_name, load_config, load_model, load_tokenizer
from .relations import check_relation_heads
from .student import build_student, check_same_vocabulary, load_student, student_init
from .teacher import finetuned_teacher, read_marker, teacher_dir



def check_shapes_early(args, config: DistillationConfig) -> None:
    """Catch an impossible student or layer map before minutes are spent fine-tuning the teacher."""
    from .layer_map import resolve_layer_map

    teacher_config = load_config(args.teacher_path, args.trust_remote_code)
    if args.student:
        student_config = load_config(args.student_path, args.trust_remote_code)
        student_layers = student_config.num_hidden_layers
    else:
        student_config = None
        student_layers = len(args.layer_ids) if args.layer_ids is not None else args.student_layers or teacher_config.num_hidden_layers
        narrower = any(v is not None for v in (args.student_hidden_size, args.student_intermediate_size, args.student_heads))
        if not narrower and student_layers > teacher_config.num_hidden_layers:
            raise BertliteError(f"--student_layers {student_layers}: a student initialised from teacher layers cannot be deeper "
                                f"than the teacher ({teacher_config.num_hidden_layers} layers).")
        bad = [i for i in (args.layer_ids or []) if not 0 <= i < teacher_config.num_hidden_layers]
        if bad:
            raise BertliteError(f"--student_layer_ids {bad} are outside the teacher's layers 0..{teacher_config.num_hidden_layers - 1}.")
    if config.needs_layer_map:
        resolve_layer_map(config.layer_map, student_layers, teacher_config.num_hidden_layers)
    if config.needs_relations and config.relation_heads:
        # Plain BERT's attention width is its hidden size (a head-pruned model's is checked by the trainer).
        student_width = student_config.hidden_size if student_config is not None else args.student_hidden_size
        shapes = (("teacher", teacher_config, teacher_config.hidden_size),
                  ("student", student_config or teacher_config, student_width or teacher_config.hidden_size))
        check_relation_heads(config.relation_heads, {role: width for role, cfg, width in shapes if cfg.model_type == "bert"})


def _load_teacher(path: str, num_labels: int, trust_remote_code: bool):
    return load_model(path, head="classifier", num_labels=num_labels, require_head=True, trust_remote_code=trust_remote_code)


def task_teacher(args, task: str, folder: str, seed: int, log) -> tuple[str, bool]:
    """`args.teacher` trained on `task`: (path, whether it was fine-tuned here). Fine-tuned into `folder` with the
    `teacher_*` settings (a finished fine-tune is reused), or used as is when it already has a head for the task."""
    path = finetuned_teacher(args.teacher_path, task, folder, name=args.teacher_name, epochs=args.teacher_epochs, learning_rate=args.teacher_learning_rate,
                             max_length=args.max_length, seed=seed, max_train_examples=args.max_train_examples,
                             trust_remote_code=args.trust_remote_code, fresh=args.fresh, log=log)
    return path, path != args.teacher_path


def _teacher_paths(args, num_labels: int, output_dir: str, seed: int, log) -> tuple[list[str], list[str]]:
    """Paths and display names of the teacher trained on the task (fine-tuned first when it has no head for it),
    then of the ensemble's other members: `teacher_ensemble - 1` more fine-tunes with the next seeds, and the
    `extra_teachers` as given. Names never hold a path this job made (they go into model cards)."""
    from .teacher import has_task_head

    if args.teacher_ensemble > 1 and has_task_head(args.teacher_path, num_labels):
        raise BertliteError(f"--teacher_ensemble {args.teacher_ensemble} fine-tunes several teachers from a pre-trained one, but "
                            f"{args.teacher_name} already has a {num_labels}-label head for the task. Pass other "
                            "fine-tuned teachers with --extra_teachers DIR,DIR instead.")
    for extra, extra_path in zip(args.extra_teacher_list, args.extra_teacher_paths):
        try:
            fine_tuned = has_task_head(extra_path, num_labels)
        except OSError as err:
            raise BertliteError(f"Could not read the extra teacher {extra!r}: {err}") from err
        if not fine_tuned:
            raise BertliteError(f"--extra_teachers {extra!r} has no {num_labels}-label classification head: every extra teacher "
                                "must already be fine-tuned on the task (or use --teacher_ensemble N to fine-tune N teachers).")
    paths, names = [], []
    for i in range(args.teacher_ensemble):
        if args.teacher_ensemble > 1:
            log(f"Ensemble teacher {i + 1} of {args.teacher_ensemble} (seed {seed + i}).")
        path, fine_tuned = task_teacher(args, args.task, teacher_dir(output_dir, i),
                                        seed + i, log)
        paths.append(path)
        names.append(f"{args.teacher_name} fine-tuned on {args.task} (seed {seed + i})" if fine_tuned else args.teacher_name)
    paths += args.extra_teacher_paths
    names += [display_name(extra) for extra in args.extra_teacher_list]
    return paths, names


def make_student(args, teacher, seed: int, log=print):
    """The student and how it was initialised (for the compression record)."""
    if args.student:
        student, copied = load_student(args.student_path, teacher.config.num_labels, teacher, args.trust_remote_code,
                                       head=args.student_head, log=log)
        return student, {"from": display_name(args.student), **({"head_from_teacher": copied} if copied else {})}
    shape = dict(num_layers=args.student_layers if args.layer_ids is None else None, layer_ids=args.layer_ids,
                 hidden_size=args.student_hidden_size, intermediate_size=args.student_intermediate_size,
                 num_attention_heads=args.student_heads, seed=seed)
    init = student_init(teacher.config, **shape)
    if "random_init_seed" in init:
        # Measured: random 3 x 192 students of the packaged MiniLM stayed at chance under the default losses (three
        # seeds): matching the teacher's hidden states from random weights drowned the labels. Without those losses
        # they learned, and after general distillation they learned best (results doc below).
        log("The student's shape is not the teacher's, so it starts from random weights: with the hidden-state and "
            "embedding losses on (the defaults) task distillation alone can leave it at chance. Distil it generally "
            "first (`bertlite distill --general ... --output_dir GENERAL`, then --student GENERAL), or pass "
            "--hidden_weight 0 --embedding_weight 0 (docs/augmentation_and_general_distillation.md).")
    return build_student(teacher, **shape), init


def describe_shape(model) -> dict:
    """Depth, width and parameter count. A structurally pruned model (bertlite config) also gets its per-layer head
    counts and FFN sizes, and its totals reflect them rather than the unpruned config values."""
    c = model.config
    shape = {"layers": c.num_hidden_layers, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
             "attention_heads": c.num_attention_heads, "parameters": count_parameters(model)}
    heads = getattr(c, "layer_num_attention_heads", None)
    ffn = getattr(c, "layer_intermediate_sizes", None)
    if heads is not None and ffn is not None:
        shape.update(attention_heads_per_layer=list(heads), intermediate_size_per_layer=list(ffn),
                     attention_heads=int(sum(heads)), intermediate_size=int(sum(ffn)))
    return shape


def run_distillation(args, config: DistillationConfig, log=print) -> dict:
    """Runs the whole job and returns the metrics written to `<output_dir>/metrics.json`."""
    output_dir = config.output_dir
    # Before any work: a re-run with another recipe stops here instead of resuming it (bertlite.jobs re-run rules).
    settings = result_settings(args, config)
    resumable = check_job(output_dir, settings, fresh=args.fresh)
    tokenizer = load_tokenizer(args.teacher_path, trust_remote_code=args.trust_remote_code)
    dsd, info = load_task(args.task, text_column=args.text_column, text_pair_column=args.text_pair_column,
                          label_column=args.label_column, max_train_examples=args.max_train_examples,
                          max_eval_examples=args.max_eval_examples)
    log(f"Task {info.name}: {len(dsd['train'])} train / {len(dsd['validation'])} validation / {len(dsd['test'])} test examples ({info.source}).")

    check_shapes_early(args, config)
    teacher_paths, teacher_names = _teacher_paths(args, info.num_labels, output_dir, config.seed, log)
    teacher_path = teacher_paths[0]
    teacher = _load_teacher(teacher_path, info.num_labels, args.trust_remote_code)
    if len(teacher_paths) > 1:
        from .ensemble import TeacherEnsemble

        teacher = TeacherEnsemble([teacher] + [_load_teacher(p, info.num_labels, args.trust_remote_code) for p in teacher_paths[1:]])
        for path in teacher_paths[1:]:
            if load_tokenizer(path, args.trust_remote_code).get_vocab() != tokenizer.get_vocab():
                raise BertliteError(f"Teacher {path!r} uses another vocabulary than {args.teacher_name}: the teachers of "
                                    "an ensemble must share one tokenizer.")
        log(f"Teacher: an ensemble of {len(teacher_paths)} fine-tuned teachers (logits averaged; intermediate targets from the first).")
    anchor = teacher.anchor if len(teacher_paths) > 1 else teacher  # the single model the student is built from and timed against
    student, init = make_student(args, anchor, config.seed, log)
    if args.student:
        check_same_vocabulary(student.config, teacher.config, load_tokenizer(args.student_path, args.trust_remote_code), tokenizer)
    log(f"Teacher: {describe_shape(anchor)}")
    log(f"Student: {describe_shape(student)}")

    encoded = tokenize(dsd, tokenizer, args.max_length)
    augmentation = None  # how the added training data was made, for compression_config.json
    if args.augmented:
        from ..augmentation.dataset import with_augmented

        encoded["train"], augmentation = with_augmented(
            encoded["train"], args.augmented, tokenizer, max_length=args.max_length, task=args.task, is_pair=info.is_pair,
            max_train_examples=args.max_train_examples, log=log)
    transfer = None  # the transfer set's record, for compression_config.json
    if args.transfer_data:
        if info.is_pair:
            raise BertliteError(f"--transfer_data adds single sentences, but task {info.name!r} has sentence pairs.")
        from .transfer import with_transfer_set

        held_out = set(dsd["validation"]["text"]) | set(dsd["test"]["text"])
        encoded["train"], transfer = with_transfer_set(
            encoded["train"], args.transfer_data, args.transfer_examples or len(dsd["train"]), tokenizer,
            max_length=args.max_length, seed=config.seed, text_column=args.transfer_text_column, exclude=held_out, log=log)
    from ..hub.callback import ModelCardCallback
    from .trainer import DistillationTrainer

    record_job(output_dir, "task distillation", settings)
    spec = metric_spec(info)
    config.output_dir = os.path.join(output_dir, CHECKPOINTS)
    card_callback = ModelCardCallback()  # hyperparameters and eval history for the model card
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config, train_dataset=encoded["train"],
                                  eval_dataset=encoded["validation"], data_collator=DataCollatorWithPadding(tokenizer),
                                  processing_class=tokenizer, compute_metrics=trainer_compute_metrics(spec), callbacks=[card_callback])
    try:
        run_training(trainer, fresh=args.fresh or not resumable, what="the distillation", log=log)
    finally:
        config.output_dir = output_dir

    student = trainer.student
    student.config.architectures = [type(student).__name__]
    card_callback.save(output_dir)

    record = CompressionConfig.load_or_new(None, base_model=args.teacher_name, task=info.name,
                                           dataset=info.source, split_note=info.split_note)
    ensemble = teacher_names if len(teacher_paths) > 1 else None
    record.add_step("distillation", teacher=args.teacher_name, **({"teacher_ensemble": ensemble} if ensemble else {}),
                    student_shape=describe_shape(student),
                    student_init=init, **distillation_params(config),
                    **({"augmentation": augmentation} if augmentation else {}),
                    **({"transfer_set": transfer} if transfer else {}))
    metrics = {"task": info.to_dict(),
               # labelled examples, and unlabeled ones (augmented / transfer set) learned from soft targets only
               "training_examples": {"labelled": len(dsd["train"]), "soft_targets_only": len(encoded["train"]) - len(dsd["train"])},
               "teacher": {"model": args.teacher_name, **describe_shape(anchor)},
               "student": describe_shape(student)}
    log(f"Evaluating teacher and student on the test split ({', '.join(spec.metrics)})...")
    metrics["teacher"].update(task_scores(teacher, tokenizer, dsd, spec, args.max_length, "Teacher"))
    metrics["teacher"].update(teacher_fine_tune(teacher_path))
    if ensemble:
        # The teacher's scores above are the ensemble's (what the student learned from); shape, size and latency
        # are one member's, the model a user would otherwise deploy.
        members = [task_scores(m, tokenizer, dsd, spec, args.max_length, f"Teacher {i + 1}")
                   for i, m in enumerate(teacher.members)]
        metrics["teacher"]["ensemble"] = {"members": ensemble, f"member_test_{spec.main}": [m[f"test_{spec.main}"] for m in members]}
        if "test_accuracy" in members[0]:
            metrics["teacher"]["ensemble"]["member_test_accuracy"] = [m["test_accuracy"] for m in members]
    metrics["student"].update(task_scores(student, tokenizer, dsd, spec, args.max_length, "Student"))
    metrics["student"].update(task_scores(student, tokenizer, dsd, spec, args.max_length, "Student", split="validation"))
    metrics["main_metric"] = spec.main
    teacher_size = folder_size_mb(teacher_path) if os.path.isdir(teacher_path) else count_parameters(anchor) * 4 / 1e6
    metrics["teacher"]["size_mb"] = round(teacher_size, 2)
    if args.measure_latency:
        log("Measuring CPU latency (interleaved, median)...")
        for batch in (8, 1):
            lat = compare_latency({"teacher": anchor.eval(), "student": student.eval()}, batch_size=batch, seq_len=128)
            metrics["teacher"][f"latency_ms_b{batch}"] = round(lat["teacher"], 2)
            metrics["student"][f"latency_ms_b{batch}"] = round(lat["student"], 2)
            metrics["student"][f"speedup_b{batch}"] = round(lat["teacher"] / lat["student"], 2)
        metrics["latency_setup"] = {"threads": torch.get_num_threads(), "seq_len": 128, "measured_by": "bertlite distill (evaluation.compare_latency)"}
    metrics["student"].update(relative_to_teacher(metrics, spec))

    def with_size(staged: str) -> dict:  # the size of the weights as written
        metrics["student"]["size_mb"] = round(folder_size_mb(staged), 2)
        return metrics

    save_model_folder(output_dir, student, tokenizer, record, with_size)  # safetensors; projections are not part of the student
    finish_job(output_dir)
    log(summary_table(metrics))
    return metrics


def task_scores(model, tokenizer, dsd, spec, max_length: int, who: str, split: str | None = None) -> dict:
    """`<split>_<metric>` for the task's metrics (on the splits it is reported on, or `split`); classification
    tasks always include `<split>_accuracy`, the key existing readers of metrics.json use."""
    splits = [split] if split else list(spec.eval_splits)
    return evaluate_splits(model, tokenizer, dsd, spec.with_accuracy(), splits=splits, max_length=max_length,
                           desc=f"{who} {splits[0]}")


def teacher_fine_tune(teacher_path: str) -> dict:
    """How a teacher fine-tuned by this job was chosen (epochs, kept epoch, its validation scores as
    `validation_<metric>`), from its marker; {} for a teacher used as given."""
    recorded = read_marker(teacher_path) if os.path.isdir(teacher_path) else {}
    if not recorded.get("validation"):
        return {}
    return {**{f"validation_{m}": v for m, v in recorded["validation"].items()},
            "fine_tune": {"epochs": recorded["settings"]["epochs"], "learning_rate": recorded["settings"]["learning_rate"],
                          "selection_metric": recorded["selection_metric"], "chosen_epoch": recorded["chosen_epoch"],
                          "validation": recorded["validation"], "validation_history": recorded["validation_history"]}}


def relative_to_teacher(metrics: dict, spec) -> dict:
    """The student's test score as a fraction of the teacher's: on the task's main metric, and on accuracy
    (`accuracy_vs_teacher`, kept for existing readers) for classification tasks."""
    out = {}
    for metric in dict.fromkeys((spec.main, "accuracy")):
        t, s = metrics["teacher"].get(f"test_{metric}"), metrics["student"].get(f"test_{metric}")
        if t is not None and s is not None:
            out[f"{metric}_vs_teacher"] = round(s / t, 4) if t > 1e-9 else None
    return out


def summary_table(metrics: dict) -> str:
    t, s = metrics["teacher"], metrics["student"]
    rows = [("", "teacher", "student"),
            ("layers x hidden", f"{t['layers']} x {t['hidden_size']}", f"{s['layers']} x {s['hidden_size']}"),
            ("parameters", f"{t['parameters'] / 1e6:.1f}M", f"{s['parameters'] / 1e6:.1f}M"),
            ("size (MB)", f"{t['size_mb']:.1f}", f"{s['size_mb']:.1f}"),
            _quality_row(metrics)]
    if "latency_ms_b8" in s:
        rows.append(("latency b8x128 (ms)", f"{t['latency_ms_b8']:.0f}", f"{s['latency_ms_b8']:.0f} ({s['speedup_b8']:.2f}x faster)"))
        rows.append(("latency b1x128 (ms)", f"{t['latency_ms_b1']:.0f}", f"{s['latency_ms_b1']:.0f} ({s['speedup_b1']:.2f}x faster)"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:<16} {c}" for a, b, c in rows)


def _quality_row(metrics: dict) -> tuple[str, str, str]:
    metric = metrics.get("main_metric", "accuracy")
    t, s = metrics["teacher"][f"test_{metric}"], metrics["student"][f"test_{metric}"]
    ratio = metrics["student"].get(f"{metric}_vs_teacher")
    return (f"test {metric}", f"{t:.4f}", f"{s:.4f}" + (f" ({100 * ratio:.1f}% of teacher)" if ratio is not None else ""))
