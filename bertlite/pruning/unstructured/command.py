"""`bertlite prune --method magnitude|lth|obd|synflow`: the command-line run of weight-level pruning.

`run(args)` takes the prune command's parsed `PruneArguments` (bertlite/cli/prune.py); `None` in iterations or
importance_examples means the method's own default (bertlite.pruning.defaults).
"""

from __future__ import annotations

import os
import warnings

from ...errors import BertliteError
from ...jobs import prepare_output_dir, save_model_folder
from ...loading import display_name, load_tokenizer, resolve_model_name
from ...record import CompressionConfig
from .. import defaults
from ..recovery import task_train_fn
from ..scoring import StageScores, final_scores
from .api import DEFAULT_ITERATIONS, prune_weights, remove_masks, validate
from .loading import fisher_batches, load_model
from .lottery import snapshot
from .report import REPORT_NAME


def _needs_task(method: str, iterations: int, recover: bool) -> str | None:
    if method == "lth":
        return "the Lottery Ticket method retrains the network between rounds"
    if method == "obd":
        return "Optimal Brain Damage estimates the Hessian from labelled data"
    if method == "magnitude" and iterations > 1:
        return "iterative magnitude pruning retrains between rounds (without retraining it equals one-shot)"
    if recover:
        return "--recover trains the pruned model on the task"
    return None


def _train_fn(args, tokenizer, train_dataset, **overrides):
    """The task training function with the command's options (recovery, retraining rounds, rewind warm-up)."""
    settings = dict(epochs=args.epochs, max_steps=args.recovery_steps, learning_rate=args.learning_rate,
                    batch_size=args.batch_size, max_length=args.max_length, seed=args.seed)
    settings.update(overrides)
    return task_train_fn(tokenizer, train_dataset, _output_dir(args), **settings)


def _output_dir(args) -> str:
    from ...loading import default_output_dir

    return args.output_dir or default_output_dir(args.model, "pruned")


def _obd_examples(args) -> int:
    return args.importance_examples or defaults.OBD_EXAMPLES


def run(args) -> int:
    from transformers import set_seed

    from ...data import load_task

    method, sparsity, scope = args.method, float(args.sparsity), args.scope
    iterations = int(args.iterations or 0) or DEFAULT_ITERATIONS.get(method, 1)
    validate(method, sparsity, scope, iterations)
    prepare_output_dir(_output_dir(args), create=False)  # a file or a read-only place fails now, not after the work
    if method == "synflow" and iterations < 10:
        warnings.warn(f"SynFlow with {iterations} iteration(s): the paper's layer-collapse guarantee needs many "
                      f"(default {DEFAULT_ITERATIONS['synflow']}); pass --iterations {DEFAULT_ITERATIONS['synflow']}.",
                      stacklevel=2)
    recover, task, seed = bool(args.recover), args.task, args.seed
    reason = _needs_task(method, iterations, recover)
    if reason and not task:
        raise BertliteError(f"Pass --task (e.g. --task rotten_tomatoes): {reason}.")
    set_seed(seed)
    remote = bool(args.trust_remote_code)

    tokenizer = load_tokenizer(args.model, trust_remote_code=remote)
    dsd, info = load_task(task, max_train_examples=args.max_train_examples,
                          max_eval_examples=args.max_eval_examples) if task else (None, None)
    model = load_model(args.model, info.num_labels if info else None, remote)
    metrics = StageScores(args.evaluate, tokenizer, dsd, info, batch_size=args.batch_size, max_length=args.max_length)
    metrics(model, "before")
    train_fn = _train_fn(args, tokenizer, dsd["train"]) if task else None
    rewind_state = None
    rewind_step = args.rewind_step
    if method == "lth" and rewind_step > 0:
        print(f"Training {rewind_step} steps to the rewind point (Frankle et al. 2019)")
        _train_fn(args, tokenizer, dsd["train"], max_steps=rewind_step)(model)
        rewind_state = snapshot(model)
    data = None
    if method == "obd":
        data = fisher_batches(tokenizer, dsd["train"], _obd_examples(args), args.obd_batch_size, args.max_length, seed)

    print(f"Pruning {display_name(args.model)} to {sparsity:.0%} sparsity with {method} ({scope}, {iterations} iteration(s))")
    report = prune_weights(model, method, sparsity, scope=scope, iterations=iterations,
                           include_embeddings=bool(args.include_embeddings), include_classifier=bool(args.include_classifier),
                           train_fn=train_fn, data=data, rewind_state=rewind_state,
                           on_collapse="warn" if args.allow_layer_collapse else "error")
    print(report.table())
    metrics(model, "pruned")
    recovery = None
    if recover:
        recovery = _recover(model, args, tokenizer, dsd["train"])
        metrics(model, "recovered")
    _save(model, tokenizer, report, args, iterations, rewind_step, recovery, metrics.values, info)
    return 0


def _recover(model, args, tokenizer, train_dataset) -> dict:
    """Distil from --teacher, by default the unpruned model (fine-tuned on the task first if it has no head for it)."""
    from ... import finetuned_teacher

    teacher_name = getattr(args, "teacher", None) or args.model
    teacher_path = finetuned_teacher(teacher_name, args.task, os.path.join(_output_dir(args), "teacher"),
                                     max_length=args.max_length, seed=args.seed,
                                     max_train_examples=args.max_train_examples,
                                     trust_remote_code=args.trust_remote_code)
    teacher = load_model(teacher_path, model.config.num_labels, args.trust_remote_code)
    train = _train_fn(args, tokenizer, train_dataset, teacher=teacher)
    train(model)
    return {"purpose": "recovery after weight pruning", "teacher": display_name(teacher_name), **train.settings}


def _save(model, tokenizer, report, args, iterations, rewind_step, recovery, metrics, info) -> None:
    out = _output_dir(args)
    remove_masks(model)  # plain weights with zeros: the folder loads in plain transformers
    source = resolve_model_name(args.model)
    record = CompressionConfig.load_or_new(source if os.path.isdir(source) else None, base_model=display_name(args.model))
    if info is not None:
        record.task = record.task or info.name
        record.dataset = record.dataset or info.source
        record.split_note = record.split_note or info.split_note
    params = dict(pruning_method=args.method, sparsity=report.requested_sparsity, achieved_sparsity=report.sparsity,
                  scope=report.scope, iterations=iterations, include_embeddings=bool(args.include_embeddings),
                  include_classifier=bool(args.include_classifier), pruned_params=report.pruned_params,
                  prunable_params=report.prunable_params, seed=args.seed)
    if args.method == "lth":
        params["rewind_step"] = rewind_step
    if args.method == "obd":
        params["importance_examples"] = _obd_examples(args)
    record.add_step("weight_pruning", **params)
    if recovery:
        record.add_step("distillation", **recovery)
    record.metrics["weight_pruning"] = {**metrics, "sparsity": report.sparsity, "model_sparsity": report.model_sparsity}
    if not args.max_eval_examples:  # on the whole test split, as the teacher's figure: the card's column
        record.measured(**final_scores(metrics))
    save_model_folder(out, model, tokenizer, record, write=report.save)  # atomic: never half a pruned model
    print(f"Saved the pruned model, tokenizer, {REPORT_NAME} and compression_config.json to {out}")
