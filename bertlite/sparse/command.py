"""`bertlite prune --method magnitude|lth|obd|synflow`: the command-line run of weight-level pruning.

`run(args)` takes the prune command's parsed arguments (fields model, output_dir, method, sparsity, scope,
iterations, rewind_step, include_embeddings, include_classifier, recover, teacher, task, seed); the optional
fields read with getattr below tune recovery and OBD and have defaults here.
"""

from __future__ import annotations

import os

from ..compression_config import CompressionConfig
from ..errors import BertliteError
from ..models import display_name, load_tokenizer, resolve_model_name
from .api import DEFAULT_ITERATIONS, prune_weights, remove_masks, validate
from .loading import fisher_batches, load_model
from .lottery import snapshot
from .recovery import task_train_fn

OPTIONAL_DEFAULTS = {
    "recovery_epochs": 1.0,  # fine-tuning epochs of recovery and of every retraining round (lth, iterative magnitude)
    "recovery_steps": -1,  # when > 0: optimizer steps per recovery/retraining run instead of epochs
    "learning_rate": 3e-5,
    "batch_size": 32,
    "max_length": 128,
    "max_train_examples": None,  # cap on training examples (recovery, retraining rounds, OBD sample)
    "max_eval_examples": None,  # cap on validation/test examples for the reported accuracy
    "obd_samples": 256,  # examples whose squared gradients estimate the Fisher diagonal
    "obd_batch_size": 1,  # 1 = per-sample empirical Fisher
    "allow_layer_collapse": False,  # warn instead of refusing when a layer would be fully pruned
}


def _option(args, name: str):
    value = getattr(args, name, None)
    return OPTIONAL_DEFAULTS[name] if value is None else value


def _needs_task(method: str, iterations: int, recover: bool) -> str | None:
    if method == "lth":
        return "the Lottery Ticket method retrains the network between rounds"
    if method == "obd":
        return "Optimal Brain Damage estimates the Hessian from labelled data"
    if method == "magnitude" and iterations > 1:
        return "iterative magnitude pruning retrains between rounds (without retraining it equals one-shot)"
    if recover:
        return "--recover fine-tunes the pruned model on the task"
    return None


def run(args) -> int:
    from transformers import set_seed

    from ..data import load_task
    from ..evaluation import accuracy

    method, sparsity, scope = args.method, float(args.sparsity), args.scope
    iterations = int(args.iterations or 0) or DEFAULT_ITERATIONS.get(method, 1)
    validate(method, sparsity, scope, iterations)
    recover, task, seed = bool(args.recover), args.task, int(args.seed or 0)
    reason = _needs_task(method, iterations, recover)
    if reason and not task:
        raise BertliteError(f"Pass --task (e.g. --task rotten_tomatoes): {reason}.")
    if not args.output_dir:
        raise BertliteError("Pass --output_dir, the folder the pruned model is saved to.")
    set_seed(seed)

    tokenizer = load_tokenizer(args.model)
    dsd, info = load_task(task, max_train_examples=_option(args, "max_train_examples"),
                           max_eval_examples=_option(args, "max_eval_examples")) if task else (None, None)
    model = load_model(args.model, info.num_labels if info else None)
    max_length = int(_option(args, "max_length"))
    train_fn = None
    if task:
        train_fn = task_train_fn(tokenizer, dsd["train"], args.output_dir, epochs=float(_option(args, "recovery_epochs")),
                                 max_steps=int(_option(args, "recovery_steps")), learning_rate=float(_option(args, "learning_rate")),
                                 batch_size=int(_option(args, "batch_size")), max_length=max_length, seed=seed)
    rewind_state = None
    rewind_step = int(getattr(args, "rewind_step", 0) or 0)
    if method == "lth" and rewind_step > 0:
        print(f"Training {rewind_step} steps to the rewind point (Frankle et al. 2019)")
        task_train_fn(tokenizer, dsd["train"], args.output_dir, max_steps=rewind_step,
                      learning_rate=float(_option(args, "learning_rate")), batch_size=int(_option(args, "batch_size")),
                      max_length=max_length, seed=seed)(model)
        rewind_state = snapshot(model)
    data = None
    if method == "obd":
        data = fisher_batches(tokenizer, dsd["train"], int(_option(args, "obd_samples")), int(_option(args, "obd_batch_size")),
                              max_length, seed)

    print(f"Pruning {display_name(args.model)} to {sparsity:.0%} sparsity with {method} ({scope}, {iterations} iteration(s))")
    report = prune_weights(model, method, sparsity, scope=scope, iterations=iterations,
                           include_embeddings=bool(args.include_embeddings), include_classifier=bool(args.include_classifier),
                           train_fn=train_fn, data=data, rewind_state=rewind_state,
                           on_collapse="warn" if _option(args, "allow_layer_collapse") else "error")
    print(report.table())

    metrics = {"sparsity": report.sparsity, "model_sparsity": report.model_sparsity}
    if task:
        metrics["test_accuracy_pruned"] = accuracy(model, tokenizer, dsd["test"], max_length=max_length, desc="Test accuracy")
        print(f"Test accuracy after pruning: {metrics['test_accuracy_pruned']:.4f}")
    recovery = None
    if recover:
        recovery = _recover(model, args, train_fn)
        metrics["test_accuracy_recovered"] = accuracy(model, tokenizer, dsd["test"], max_length=max_length, desc="Test accuracy")
        print(f"Test accuracy after recovery ({recovery}): {metrics['test_accuracy_recovered']:.4f}")

    _save(model, tokenizer, report, args, iterations, rewind_step, recovery, metrics, info)
    return 0


def _recover(model, args, train_fn) -> str:
    teacher = getattr(args, "teacher", None)
    if teacher:
        # Recovery by distillation needs bertlite's DistillationTrainer, which is not part of this package yet.
        import warnings

        warnings.warn(f"Recovery by distillation from {teacher!r} is not available in this version; recovering by "
                      "fine-tuning on the task labels instead.", stacklevel=2)
    train_fn(model)
    return "fine-tuning"


def _save(model, tokenizer, report, args, iterations, rewind_step, recovery, metrics, info) -> None:
    out = args.output_dir
    remove_masks(model)  # plain weights with zeros: the folder loads in plain transformers
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report_path = report.save(out)
    source = resolve_model_name(args.model)
    record = CompressionConfig.load_or_new(source if os.path.isdir(source) else None, base_model=display_name(args.model))
    if info is not None:
        record.task = record.task or info.name
        record.dataset = record.dataset or info.source
        record.split_note = record.split_note or info.split_note
    params = dict(pruning_method=args.method, sparsity=report.requested_sparsity, achieved_sparsity=report.sparsity,
                  scope=report.scope, iterations=iterations, include_embeddings=bool(args.include_embeddings),
                  include_classifier=bool(args.include_classifier), pruned_params=report.pruned_params,
                  prunable_params=report.prunable_params, recovery=recovery, seed=args.seed)
    if args.method == "lth":
        params["rewind_step"] = rewind_step
    record.add_step("weight_pruning", **params)
    record.metrics["weight_pruning"] = metrics
    record.save_pretrained(out)
    print(f"Saved the pruned model, tokenizer, {os.path.basename(report_path)} and compression_config.json to {out}")
