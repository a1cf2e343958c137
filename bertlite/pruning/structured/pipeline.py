"""The `bertlite prune` pipeline for structured pruning: load, score, prune (one-shot or gradual), recover, save."""

from __future__ import annotations

import copy
import os

import torch

from ...errors import BertliteError
from ...evaluation import count_parameters
from .. import defaults, recovery
from ..scoring import StageScores, final_scores
from .api import check_feasible, prune
from .gates import layer_shapes
from .surgery import describe_shapes


def importance_loader(tokenized_train, tokenizer, examples: int, batch_size: int, seed: int):
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    subset = tokenized_train.shuffle(seed=seed).select(range(min(examples, len(tokenized_train))))
    return DataLoader(subset, batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer))


def run_structured(args) -> str:
    """Run `bertlite prune` for structured pruning (`args`: bertlite.cli.prune.PruneArguments). Returns the output folder."""
    from transformers import set_seed

    from ...data import load_task, tokenize
    from ...loading import display_name, load_model, load_tokenizer, resolve_model_name
    from ...loading import default_output_dir
    from ...record import CompressionConfig

    set_seed(args.seed)
    from ...jobs import prepare_output_dir, save_model_folder

    output_dir = prepare_output_dir(args.output_dir or default_output_dir(args.model, "pruned"), create=False)
    importance_examples = args.importance_examples or defaults.IMPORTANCE_EXAMPLES
    dsd, info = load_task(args.task, max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples)
    tokenizer = load_tokenizer(args.model, trust_remote_code=args.trust_remote_code)
    model = load_model(args.model, head="classifier", num_labels=info.num_labels, require_head=True,
                       trust_remote_code=args.trust_remote_code)
    check_feasible(model, heads=args.heads, ffn=args.ffn, scope=args.scope, min_heads_per_layer=args.min_heads_per_layer,
                   min_ffn_per_layer=args.min_ffn_per_layer)
    tokenized = tokenize(dsd, tokenizer, args.max_length)
    evaluate = StageScores(args.evaluate, tokenizer, dsd, info, batch_size=args.batch_size, max_length=args.max_length)
    evaluate(model, "before")
    before_shapes, params_before = layer_shapes(model), count_parameters(model)
    recovery_dir = os.path.join(output_dir, "recovery")
    training = {}
    if args.schedule == "gradual":
        pruned, plan_summary, config = _gradual(args, model, tokenizer, tokenized, recovery_dir)
        training = {"teacher": display_name(args.teacher or args.model), **recovery.recorded(config)}
    else:
        batches = None
        if args.criterion != "magnitude":
            batches = importance_loader(tokenized["train"], tokenizer, importance_examples, args.batch_size, args.seed)
        result = prune(model, heads=args.heads, ffn=args.ffn, criterion=args.criterion, scope=args.scope, batches=batches,
                       min_heads_per_layer=args.min_heads_per_layer, min_ffn_per_layer=args.min_ffn_per_layer)
        pruned = result.model
        plan_summary = {"heads": {str(k): v for k, v in result.plan.heads.items() if v},
                        "ffn_removed_per_layer": [len(result.plan.ffn.get(i, [])) for i in range(len(before_shapes))]}
        evaluate(pruned, "pruned")
        if args.recover:
            teacher = _teacher(args, model, info.num_labels)
            config = recovery.training_arguments(recovery_dir, distill=True, **training_settings(args))
            pruned = recovery.trained_model(recovery.train(pruned, config, tokenized["train"], tokenizer, teacher=teacher))
            training = {"teacher": display_name(args.teacher or args.model), **recovery.recorded(config)}
    if args.recover or args.schedule == "gradual":
        evaluate(pruned, "recovered")

    after_shapes, params_after = layer_shapes(pruned), count_parameters(pruned)
    source = resolve_model_name(args.model)
    record = CompressionConfig.load_or_new(source if os.path.isdir(source) else None, base_model=display_name(args.model),
                                           task=info.name, dataset=info.source, split_note=info.split_note)
    record.add_step("structured_pruning", heads=args.heads, ffn=args.ffn, criterion=args.criterion, scope=args.scope,
                    schedule=args.schedule, min_heads_per_layer=args.min_heads_per_layer,
                    min_ffn_per_layer=args.min_ffn_per_layer,
                    importance_examples=None if args.criterion == "magnitude" else importance_examples,
                    removed=plan_summary, layer_num_attention_heads=[s.heads for s in after_shapes],
                    layer_intermediate_sizes=[s.ffn for s in after_shapes], parameters_before=params_before,
                    parameters_after=params_after)
    if training:
        purpose = "pruning while distilling (gradual)" if args.schedule == "gradual" else "recovery after structured pruning"
        record.add_step("distillation", purpose=purpose, **training)
    record.metrics["structured_pruning"] = {**evaluate.values, "parameters_before": params_before, "parameters_after": params_after}
    if not args.max_eval_examples:  # on the whole test split, as the teacher's figure: the card's column
        record.measured(**final_scores(evaluate.values))
    save_model_folder(output_dir, pruned, tokenizer, record)  # atomic: never half a pruned model

    print(describe_shapes(before_shapes, after_shapes))
    print(f"parameters: {params_before:,} -> {params_after:,} ({params_after / params_before:.1%})")
    print(f"saved to {output_dir}")
    return output_dir


def training_settings(args) -> dict:
    """The command's recovery options as `recovery.training_arguments` takes them."""
    return dict(epochs=args.epochs, max_steps=args.recovery_steps, learning_rate=args.learning_rate,
                batch_size=args.batch_size, seed=args.seed)


def _teacher(args, unpruned, num_labels: int):
    if args.teacher:
        from ...loading import load_model

        return load_model(args.teacher, head="classifier", num_labels=num_labels, require_head=True,
                          trust_remote_code=args.trust_remote_code)
    return unpruned


def _gradual(args, model, tokenizer, tokenized, recovery_dir):
    """Distil a copy of the model from the unpruned one while GradualPruningCallback masks units, then cut them out."""
    from .callback import GradualPruningCallback

    if args.criterion != "magnitude" and not len(tokenized["train"]):
        raise BertliteError("Gradual pruning needs training data.")
    teacher = _teacher(args, model, model.config.num_labels)
    student = copy.deepcopy(model)
    callback = GradualPruningCallback(heads=args.heads, ffn=args.ffn, criterion=args.criterion, scope=args.scope,
                                      min_heads_per_layer=args.min_heads_per_layer, min_ffn_per_layer=args.min_ffn_per_layer)
    config = recovery.training_arguments(recovery_dir, distill=True, **training_settings(args))
    trainer = recovery.train(student, config, tokenized["train"], tokenizer, teacher=teacher, callbacks=[callback])
    gates_plan = {"heads": {str(k): v for k, v in callback.gates.masked_heads().items() if v},
                  "ffn_removed_per_layer": [len(v) for _, v in sorted(callback.gates.masked_neurons().items())],
                  "history": callback.history}
    with torch.no_grad():
        pruned = callback.finalize(recovery.trained_model(trainer))
    return pruned, gates_plan, config
