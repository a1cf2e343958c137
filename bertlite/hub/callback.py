"""`ModelCardCallback`: records what a training run did, for the model card (the SetFit pattern).

At the end of training it keeps the hyperparameters that shape the result, the evaluation history and the
framework versions, and writes them to training_summary.json in the output folder; the card renders them under
"Training procedure". Pass it to any Trainer (including bertlite's DistillationTrainer):

    trainer = DistillationTrainer(..., callbacks=[ModelCardCallback()])
    trainer.train(); trainer.save_model(out)   # out == args.output_dir, or call callback.save(out)
"""

from __future__ import annotations

import json
import os
import platform

from transformers import TrainerCallback

from ..record import VERSION as __version__
from .card import TRAINING_SUMMARY_FILE

# TrainingArguments fields a reader needs to reproduce a run; the rest (logging, saving, hub...) is noise.
HYPERPARAMETERS = (
    "learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
    "num_train_epochs", "max_steps", "seed", "optim", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
    "lr_scheduler_type", "warmup_ratio", "warmup_steps", "max_grad_norm", "label_smoothing_factor", "fp16", "bf16",
    # DistillationConfig
    "temperature", "logit_weight", "hard_label_weight", "embedding_weight", "hidden_weight", "attention_weight",
    "relation_weight", "layer_map",
)
# Library defaults nobody changes by accident; shown only when a run changed them.
DEFAULTS_TO_HIDE = {"max_steps": -1, "warmup_steps": 0, "warmup_ratio": 0.0, "label_smoothing_factor": 0.0, "fp16": False,
                    "bf16": False, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "max_grad_norm": 1.0,
                    "weight_decay": 0.0, "gradient_accumulation_steps": 1}


class ModelCardCallback(TrainerCallback):
    def __init__(self):
        self.summary: dict = {}

    def on_train_end(self, args, state, control, **kwargs):
        self.summary = {
            "hyperparameters": _hyperparameters(args),
            "results": _eval_history(state.log_history),
            "final_metrics": _final_metrics(state.log_history),
            "framework_versions": _framework_versions(),
        }
        train_loader = kwargs.get("train_dataloader")
        if train_loader is not None and hasattr(train_loader, "dataset"):
            try:
                self.summary["train_examples"] = len(train_loader.dataset)
            except TypeError:  # an iterable dataset has no length
                pass
        if state.is_world_process_zero and args.output_dir:
            self.save(args.output_dir)

    def save(self, folder: str) -> str | None:
        """Write training_summary.json into `folder` (the one you push). Deterministic JSON. Nothing before training ends."""
        if not self.summary:
            return None
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, TRAINING_SUMMARY_FILE)
        with open(path, "w") as f:
            json.dump(self.summary, f, indent=2, sort_keys=True, default=str)
        return path


def _hyperparameters(args) -> dict:
    out = {}
    for name in HYPERPARAMETERS:
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if name in DEFAULTS_TO_HIDE and value == DEFAULTS_TO_HIDE[name]:
            continue
        out[name] = value.value if hasattr(value, "value") else value  # enums (optim, scheduler) as strings
    world = getattr(args, "world_size", 1) or 1
    out["total_train_batch_size"] = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    return json.loads(json.dumps(out, default=str))


def _eval_history(log_history: list[dict]) -> list[dict]:
    """One row per evaluation: epoch, step, the latest training loss before it, and the eval metrics."""
    rows, last_loss = [], None
    for entry in log_history:
        if "loss" in entry:
            last_loss = entry["loss"]
        if any(k.startswith("eval_") for k in entry):
            row = {"epoch": entry.get("epoch"), "step": entry.get("step"), "training_loss": last_loss}
            row.update({k: v for k, v in entry.items()
                        if k.startswith("eval_") and not k.endswith(("_runtime", "_per_second"))})
            rows.append(row)
    return rows


def _final_metrics(log_history: list[dict]) -> dict:
    for entry in reversed(log_history):
        if "train_loss" in entry:
            return {k: v for k, v in entry.items() if k in ("train_loss", "train_runtime", "epoch", "step")}
    return {}


def _framework_versions() -> dict:
    import torch
    import transformers

    versions = {"bertlite": __version__, "transformers": transformers.__version__, "torch": torch.__version__,
                "python": platform.python_version()}
    try:
        import datasets

        versions["datasets"] = datasets.__version__
    except ImportError:
        pass
    return versions
