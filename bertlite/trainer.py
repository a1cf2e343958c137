"""`DistillationTrainer`: a `transformers.Trainer` whose loss is knowledge distillation from a frozen teacher.

Only `compute_loss` and `log` (plus optimizer/checkpoint hooks for the width projections) are overridden; the
training loop is Trainer's own, so everything Trainer does (accelerate, DDP, gradient accumulation, mixed
precision, checkpoints, callbacks) keeps working.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .callbacks import SaveOnInterruptCallback
from .config import DistillationConfig
from .errors import BertliteError
from .layer_map import resolve_layer_map
from .losses import UNLABELLED, attention_loss, combine_layer_losses, hard_label_loss, hidden_state_loss, soft_logits_loss
from .student import check_same_vocabulary

PROJECTIONS_FILE = "bertlite_projections.safetensors"


def build_projections(student_hidden: int, teacher_hidden: int, student_layers: list[int], embeddings: bool) -> nn.ModuleDict:
    """TinyBERT's learned W_h / W_e: one linear map per distilled layer where the student is narrower.
    Empty when widths match (the loss then compares states directly)."""
    projections = nn.ModuleDict()
    if student_hidden == teacher_hidden:
        return projections
    if embeddings:
        projections["embeddings"] = nn.Linear(student_hidden, teacher_hidden)
    for layer in student_layers:
        projections[f"layer_{layer}"] = nn.Linear(student_hidden, teacher_hidden)
    return projections


class _ProjectionBookkeeping(TrainerCallback):
    """Projections are not part of the student, so Trainer neither zeroes their gradients (it calls
    `model.zero_grad()`) nor puts them in checkpoints: do both here."""

    def __init__(self, trainer: "DistillationTrainer"):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        # Runs after the optimizer step of every (accumulated) step.
        self.trainer.projections.zero_grad(set_to_none=True)
        return control

    def on_save(self, args, state, control, **kwargs):
        if len(self.trainer.projections) and state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            if os.path.isdir(folder):
                tensors = {k: v.detach().cpu().contiguous() for k, v in self.trainer.projections.state_dict().items()}
                save_file(tensors, os.path.join(folder, PROJECTIONS_FILE))
        return control


class DistillationTrainer(Trainer):
    """Trains `model` (the student) to imitate `teacher_model`.

    Loss = logit_weight * KL(soft logits, T) + hard_label_weight * CE(labels) + embedding_weight * L(embeddings)
         + hidden_weight * mean (or sum) over mapped layers L(hidden) + attention_weight * mean (or sum) over mapped layers L(attention)
    Each component is logged as `loss_<name>`.
    """

    def __init__(self, model=None, teacher_model=None, args: DistillationConfig | None = None, **kwargs):
        if teacher_model is None:
            raise BertliteError("DistillationTrainer needs a teacher_model.")
        if model is None:
            raise BertliteError("DistillationTrainer needs a student model (model=...).")
        if args is None:
            args = DistillationConfig(output_dir="bertlite-distilled")
        if not isinstance(args, DistillationConfig):
            raise BertliteError("DistillationTrainer's args must be a bertlite DistillationConfig (it extends TrainingArguments).")
        check_same_vocabulary(model.config, teacher_model.config)
        if args.logit_weight > 0 or args.hard_label_weight > 0:
            # A base encoder (e.g. BertModel, for general distillation) has no logits to learn from or to score.
            for role, m in (("student", model), ("teacher", teacher_model)):
                if getattr(m, "base_model", None) is m:
                    raise BertliteError(f"The {role} is a base encoder ({type(m).__name__}) without a prediction layer: set "
                                        "logit_weight=0 and hard_label_weight=0 (general distillation), or use a "
                                        "sequence-classification model.")
        s_cfg, t_cfg = model.config, teacher_model.config
        if args.needs_hidden_states or args.needs_attentions:
            self.layer_pairs = resolve_layer_map(args.layer_map, s_cfg.num_hidden_layers, t_cfg.num_hidden_layers)
        else:
            self.layer_pairs = []
        if args.needs_attentions:
            # SDPA kernels return no attention probabilities; only the eager path does.
            for m in (model, teacher_model):
                m.set_attn_implementation("eager")
        self.projections = build_projections(s_cfg.hidden_size, t_cfg.hidden_size,
                                             [s for s, _ in self.layer_pairs] if args.hidden_weight > 0 else [],
                                             embeddings=args.embedding_weight > 0)
        if args.quantization_aware:
            from .quantization import prepare_qat

            # In place and parameter-preserving: state-dict keys and optimizer references stay the same, so the
            # saved student is a plain model whose `bertlite quantize` gives exactly the int8 weights trained here.
            prepare_qat(model)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        self.interrupt_callback = SaveOnInterruptCallback() if args.save_on_interrupt else None
        if self.interrupt_callback is not None:
            callbacks.append(self.interrupt_callback)
        callbacks.append(_ProjectionBookkeeping(self))
        super().__init__(model=model, args=args, callbacks=callbacks, **kwargs)
        self.teacher = teacher_model.to(self.args.device).eval()
        self.teacher.requires_grad_(False)
        self.projections.to(self.args.device)
        self._component_sums: dict[str, float] = defaultdict(float)
        self._component_counts: dict[str, int] = defaultdict(int)

    # ----- training schedule -------------------------------------------------------------------------------------
    @property
    def interrupted(self) -> bool:
        return bool(self.interrupt_callback and self.interrupt_callback.interrupted)

    def current_stage(self) -> str:
        """'all' normally; with two_stage, 'intermediate' for the first part of training and 'prediction' after."""
        if not self.args.two_stage:
            return "all"
        max_steps = max(self.state.max_steps or 1, 1)
        return "intermediate" if self.state.global_step < self.args.stage_one_fraction * max_steps else "prediction"

    # ----- loss ---------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        if not model.training:
            # Evaluation reports the student's own task loss: that is what the saved model will be judged on.
            outputs = model(**inputs)
            loss = hard_label_loss(outputs.logits, labels) if labels is not None else outputs.logits.new_zeros(())
            return (loss, outputs) if return_outputs else loss

        args = self.args
        stage = self.current_stage()
        intermediate = stage in ("all", "intermediate")
        prediction = stage in ("all", "prediction")
        want_hidden = intermediate and args.needs_hidden_states
        want_attn = intermediate and args.needs_attentions
        student_out = model(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
        with torch.no_grad():
            teacher_out = self.teacher(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
        mask = inputs.get("attention_mask")

        parts: dict[str, tuple[float, torch.Tensor]] = {}
        if prediction and args.logit_weight > 0:
            parts["logits"] = (args.logit_weight, soft_logits_loss(student_out.logits, teacher_out.logits, args.temperature))
        # Augmented or unlabelled examples carry no trustworthy label (-100 or absent): soft targets only for them.
        if prediction and args.hard_label_weight > 0 and labels is not None and bool((labels != UNLABELLED).any()):
            parts["hard"] = (args.hard_label_weight, hard_label_loss(student_out.logits, labels))
        if want_hidden and args.embedding_weight > 0:
            parts["embeddings"] = (args.embedding_weight, hidden_state_loss(
                student_out.hidden_states[0], teacher_out.hidden_states[0], mask, args.hidden_loss,
                self.projections["embeddings"] if "embeddings" in self.projections else None))
        if want_hidden and args.hidden_weight > 0:
            losses = [hidden_state_loss(student_out.hidden_states[s], teacher_out.hidden_states[t], mask, args.hidden_loss,
                                        self.projections[f"layer_{s}"] if f"layer_{s}" in self.projections else None)
                      for s, t in self.layer_pairs]
            parts["hidden"] = (args.hidden_weight, combine_layer_losses(losses, args.layer_loss_reduction))
        if want_attn:
            losses = [attention_loss(student_out.attentions[s - 1], teacher_out.attentions[t - 1], mask, args.attention_loss)
                      for s, t in self.layer_pairs]
            parts["attention"] = (args.attention_weight, combine_layer_losses(losses, args.layer_loss_reduction))
        if not parts:
            raise BertliteError(f"No loss component is active in stage {stage!r}: check the loss weights.")

        loss = sum(weight * value for weight, value in parts.values())
        for name, (_, value) in parts.items():
            self._component_sums[name] += float(value.detach())
            self._component_counts[name] += 1
        return (loss, student_out) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Training logs carry "loss"; add each component's mean since the last log beside it.
        if "loss" in logs and self._component_counts:
            for name, total in self._component_sums.items():
                logs[f"loss_{name}"] = round(total / self._component_counts[name], 6)
            if self.args.two_stage:
                logs["stage"] = 1.0 if self.current_stage() == "intermediate" else 2.0
            self._component_sums.clear()
            self._component_counts.clear()
        super().log(logs, start_time)

    # ----- projections: trained with the student, kept out of the saved model -----------------------------------
    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        params = list(self.projections.parameters())
        already = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if params and not any(id(p) in already for p in params):
            optimizer.add_param_group({"params": params, "weight_decay": 0.0})
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # DDP averages the student's gradients across processes but knows nothing of the projections.
        if (len(self.projections) and self.args.world_size > 1 and torch.distributed.is_initialized()
                and self.accelerator.sync_gradients):
            for p in self.projections.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.args.world_size
        return loss

    def train(self, resume_from_checkpoint=None, **kwargs):
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        if isinstance(checkpoint, str) and len(self.projections):
            path = os.path.join(checkpoint, PROJECTIONS_FILE)
            if not os.path.isfile(path):
                raise BertliteError(f"Checkpoint {checkpoint!r} has no {PROJECTIONS_FILE}: it was not written by DistillationTrainer.")
            self.projections.load_state_dict(load_file(path, device=str(self.args.device)))
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
