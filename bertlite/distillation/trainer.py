"""`DistillationTrainer`: a `transformers.Trainer` whose loss is knowledge distillation from a frozen teacher.

Only `compute_loss`, `log`, the final save and the model card are overridden; the training loop is Trainer's own,
so everything Trainer does (accelerate, DDP, FSDP, DeepSpeed, gradient accumulation, mixed precision, checkpoints,
resume, callbacks) keeps working. The student and the learned width projections are one module
(`StudentWithProjections`) that the engine wraps, reduces, shards and checkpoints; the saved model is the student only.
"""

from __future__ import annotations

import copy
import inspect
import os
import re

from accelerate.utils import convert_to_fp32
import torch
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils.generic import can_return_loss, find_labels

from ..errors import BertliteError
from ..jobs import SaveOnInterruptCallback, save_model_folder
from ..loading import display_name
from ..record import CompressionConfig, write_text
from .config import DistillationConfig
from .layer_map import resolve_layer_map
from .losses import (UNLABELLED, attention_loss, combine_layer_losses, hard_label_loss, hidden_state_loss, relation_loss,
                     soft_logits_loss)
from .relations import PROJECTIONS, capture_projections, check_relation_heads, self_attention_module
from .student import check_same_vocabulary

_CHECKPOINT_FOLDER = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-\d+$")
_STUDENT = "student."


def build_projections(student_hidden: int, teacher_hidden: int, student_layers: list[int], embeddings: bool) -> nn.ModuleDict:
    """TinyBERT's learned W_h / W_e: one linear map per distilled layer where the student is narrower, keyed by the
    index of the hidden state it maps ("0" = embeddings, "m" = layer m). Empty when widths match."""
    projections = nn.ModuleDict()
    if student_hidden == teacher_hidden:
        return projections
    if embeddings:
        projections["0"] = nn.Linear(student_hidden, teacher_hidden)
    for layer in student_layers:
        projections[str(layer)] = nn.Linear(student_hidden, teacher_hidden)
    return projections


class StudentWithProjections(nn.Module):
    """The one module the engine (DDP, FSDP, DeepSpeed) wraps: the student and the projections its hidden states are
    compared through. The projections run inside `forward`, so DDP sees them used, FSDP has gathered their shards and
    ZeRO-3 its partitions; their gradients are reduced with the student's. Saving it saves the student only."""

    # compute_loss returns a per-batch mean, so Trainer must divide it by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, student: nn.Module, projections: nn.ModuleDict):
        super().__init__()
        self.student = student
        self.projections = projections

    @property
    def config(self):
        return self.student.config

    def forward(self, *args, **kwargs):
        outputs = self.student(*args, **kwargs)
        hidden = getattr(outputs, "hidden_states", None)
        if hidden is not None and len(self.projections):
            outputs["projected_hidden_states"] = tuple(
                self.projections[str(i)](h) if str(i) in self.projections else h for i, h in enumerate(hidden))
        return outputs

    def save_pretrained(self, *args, **kwargs):
        return self.student.save_pretrained(*args, **kwargs)

    def activation_checkpointing_enable(self, **kwargs):
        return self.student.activation_checkpointing_enable(**kwargs)

    def floating_point_ops(self, inputs) -> int:
        return self.student.floating_point_ops(inputs)


def _deepspeed_inference(teacher: nn.Module, accelerator) -> nn.Module:
    """The teacher as a DeepSpeed inference engine: partitioned like the student under ZeRO-3, replicated otherwise
    (ZeRO stage 0). Its hidden size sizes ZeRO-3's buckets, as for any model DeepSpeed initialises."""
    import deepspeed

    ds_config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    zero = ds_config.setdefault("zero_optimization", {})
    if zero.get("stage") == 3:
        hidden = teacher.config.hidden_size
        zero.update(reduce_bucket_size=hidden * hidden, stage3_param_persistence_threshold=10 * hidden,
                    stage3_prefetch_bucket_size=int(0.9 * hidden * hidden))
    else:
        zero["stage"] = 0
    # Nothing is trained: DeepSpeed must not build an optimizer or a scheduler for the teacher.
    for key in ("optimizer", "scheduler"):
        ds_config.pop(key, None)
    engine, *_ = deepspeed.initialize(model=teacher, config=ds_config)
    engine.eval()  # DeepSpeedEngine.eval() returns None, unlike nn.Module.eval(): keep the engine, not its result
    return engine


def _relation_modules(student: nn.Module, teacher: nn.Module, layer_pairs: list[tuple[int, int]]) -> tuple:
    """The self-attention blocks whose relations are matched: the student's last mapped layer and its teacher layer."""
    s_layer, t_layer = max(layer_pairs)
    return self_attention_module(student, s_layer), self_attention_module(teacher, t_layer)


def _relation_heads(modules: tuple, requested: int, teacher_heads: int) -> int:
    """The relation heads: as requested, else the teacher's head count when it divides both attention widths, else
    the largest count below it that does (a pruned student's width need not be a multiple of the teacher's heads)."""
    widths = {role: module.query.out_features for role, module in zip(("student", "teacher"), modules)}
    if requested:
        check_relation_heads(requested, widths)
        return requested
    return max(h for h in range(1, teacher_heads + 1) if all(w % h == 0 for w in widths.values()))


def _check_captured(student_qkv: dict, teacher_qkv: dict) -> None:
    if len(student_qkv) < len(PROJECTIONS) or len(teacher_qkv) < len(PROJECTIONS):
        raise BertliteError("relation_weight: the query/key/value projections of the related layers did not run in the "
                            "forward pass; the relation loss needs a BERT-style encoder.")
    if torch.is_grad_enabled() and not student_qkv["query"].requires_grad:
        # Reentrant checkpointing reruns the layer in backward: what the hooks saw in forward carries no gradient.
        raise BertliteError("relation_weight with activation checkpointing needs non-reentrant checkpoints: pass "
                            "activation_checkpointing_kwargs={'use_reentrant': False}.")


def teacher_display_name(teacher: nn.Module) -> str | None:
    """The teacher's name for the record and the card: its Hub id, or a local folder's name, never a machine path."""
    name = getattr(teacher.config, "_name_or_path", "") or ""
    if not name:
        return None
    shown = display_name(name)
    if os.path.isabs(shown) or os.path.isdir(shown):
        shown = os.path.basename(os.path.normpath(shown))
    return shown


class DistillationTrainer(Trainer):
    """Trains `model` (the student) to imitate `teacher_model`.

    Loss = logit_weight * KL(soft logits, T) + hard_label_weight * CE(labels) + embedding_weight * L(embeddings)
         + hidden_weight * mean (or sum) over mapped layers L(hidden) + attention_weight * mean (or sum) over mapped layers L(attention)
         + relation_weight * sum over queries, keys, values of KL(relations) of the last mapped layer pair (MiniLMv2)
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
        if args.needs_layer_map:
            self.layer_pairs = resolve_layer_map(args.layer_map, s_cfg.num_hidden_layers, t_cfg.num_hidden_layers)
        else:
            self.layer_pairs = []
        if args.needs_attentions:
            # SDPA kernels return no attention probabilities; only the eager path does.
            for m in (model, teacher_model):
                m.set_attn_implementation("eager")
        # MiniLMv2 relates the student's last layer to the teacher layer the map gives it. The self-attention blocks
        # are found now, before an engine wraps either model; their projections are looked up at each forward (QAT
        # swaps the Linears).
        self.relation_modules, self.relation_heads = None, 0
        if args.needs_relations:
            self.relation_modules = _relation_modules(model, teacher_model, self.layer_pairs)
            self.relation_heads = _relation_heads(self.relation_modules, args.relation_heads, t_cfg.num_attention_heads)
        projections = build_projections(s_cfg.hidden_size, t_cfg.hidden_size,
                                        [s for s, _ in self.layer_pairs] if args.hidden_weight > 0 else [],
                                        embeddings=args.embedding_weight > 0)
        if args.quantization_aware:
            from ..quantization import prepare_qat

            # In place and parameter-preserving: state-dict keys and optimizer references stay the same, so the
            # saved student is a plain model whose `bertlite quantize` gives exactly the int8 weights trained here.
            prepare_qat(model)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        self.interrupt_callback = SaveOnInterruptCallback() if args.save_on_interrupt else None
        if self.interrupt_callback is not None:
            callbacks.append(self.interrupt_callback)
        super().__init__(model=StudentWithProjections(model, projections), args=args, callbacks=callbacks, **kwargs)
        # Trainer read these from the container; what a label and a dataset column are is the student's business.
        # (Callbacks get `model=trainer.model`, the container: its `student` attribute is the model being trained.)
        if self.args.label_names is None:
            self.label_names = find_labels(type(model))
        self.can_return_loss = can_return_loss(type(model))
        self.teacher = self._prepare_teacher(teacher_model)
        # Each loss component's sum and count since the last log, kept as tensors and read only when logging: a
        # float() per component and step would make the host wait for the accelerator at every step.
        self._component_sums: dict[str, torch.Tensor] = {}
        self._component_counts: dict[str, torch.Tensor | int] = {}

    @property
    def student(self) -> nn.Module:
        """The model being distilled (what `save_model` writes); `self.model` is it with the projections."""
        return self.model.student

    @property
    def projections(self) -> nn.ModuleDict:
        return self.model.projections

    def _prepare_teacher(self, teacher: nn.Module) -> nn.Module:
        """As TRL's distillation trainers: ZeRO-3 partitions the teacher through DeepSpeed (inference only), other
        engines get it through accelerate in evaluation mode (on each device, never wrapped for training)."""
        teacher.eval().requires_grad_(False)
        if self.args.teacher_torch_dtype is not None:  # teacher_dtype: a frozen teacher needs no fp32 master weights
            teacher.to(self.args.teacher_torch_dtype)
        if self.is_deepspeed_enabled:
            return _deepspeed_inference(teacher, self.accelerator)
        if self.is_fsdp_enabled:
            return self.accelerator.prepare_model(teacher, evaluation_mode=True)
        return teacher.to(self.args.device)

    def _set_signature_columns_if_needed(self):
        # The dataset columns kept are the student's inputs (the container's forward takes **kwargs).
        if self._signature_columns is None:
            self._signature_columns = [*inspect.signature(self.student.forward).parameters, "label", "label_ids",
                                       *self.label_names]

    def get_decay_parameter_names(self, model) -> list[str]:
        # The projections only serve the loss: no weight decay on them (TinyBERT).
        return [n for n in super().get_decay_parameter_names(model) if not n.startswith("projections.")]

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
        want_rel = intermediate and args.needs_relations
        s_rel, t_rel = self.relation_modules if want_rel else (None, None)
        with capture_projections(s_rel) as student_qkv:
            student_out = model(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
        # Under --bf16/--fp16 the teacher runs in the step's mixed precision too: accelerate autocasts only the
        # forward of the model it prepared for training (the student), so without this the teacher ran in fp32.
        with torch.no_grad(), self.accelerator.autocast(), capture_projections(t_rel) as teacher_qkv:
            teacher_out = self.teacher(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
        teacher_out = convert_to_fp32(teacher_out)  # the losses compare in float32, whatever the teacher ran in
        mask = inputs.get("attention_mask")
        # The container projected the narrower student's hidden states inside its forward (see StudentWithProjections).
        student_hidden = student_out.get("projected_hidden_states", student_out.hidden_states) if want_hidden else None

        parts: dict[str, tuple[float, torch.Tensor]] = {}
        if prediction and args.logit_weight > 0:
            parts["logits"] = (args.logit_weight, soft_logits_loss(student_out.logits, teacher_out.logits, args.temperature))
        # Augmented or unlabelled examples carry no trustworthy label (-100 or absent): soft targets only for them
        # (hard_label_loss counts only labelled examples, so a batch without any adds exactly 0).
        if prediction and args.hard_label_weight > 0 and labels is not None:
            parts["hard"] = (args.hard_label_weight, hard_label_loss(student_out.logits, labels))
        if want_hidden and args.embedding_weight > 0:
            parts["embeddings"] = (args.embedding_weight, hidden_state_loss(
                student_hidden[0], teacher_out.hidden_states[0], mask, args.hidden_loss))
        if want_hidden and args.hidden_weight > 0:
            losses = [hidden_state_loss(student_hidden[s], teacher_out.hidden_states[t], mask, args.hidden_loss)
                      for s, t in self.layer_pairs]
            parts["hidden"] = (args.hidden_weight, combine_layer_losses(losses, args.layer_loss_reduction))
        if want_attn:
            losses = [attention_loss(student_out.attentions[s - 1], teacher_out.attentions[t - 1], mask, args.attention_loss)
                      for s, t in self.layer_pairs]
            parts["attention"] = (args.attention_weight, combine_layer_losses(losses, args.layer_loss_reduction))
        if want_rel:
            _check_captured(student_qkv, teacher_qkv)
            losses = [relation_loss(student_qkv[p], teacher_qkv[p], mask, self.relation_heads) for p in PROJECTIONS]
            parts["relation"] = (args.relation_weight, torch.stack(losses).sum())
        if not parts:
            raise BertliteError(f"No loss component is active in stage {stage!r}: check the loss weights.")

        loss = sum(weight * value for weight, value in parts.values())
        for name, (_, value) in parts.items():
            self._component_sums[name] = self._component_sums.get(name, 0) + value.detach()
            # The logged hard-label loss is the mean over batches that hold a label (counted on the device).
            counted = (labels != UNLABELLED).any() if name == "hard" else 1
            self._component_counts[name] = self._component_counts.get(name, 0) + counted
        return (loss, student_out) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Training logs carry "loss"; add each component's mean since the last log beside it.
        if "loss" in logs and self._component_counts:
            for name, total in self._component_sums.items():
                count = float(self._component_counts[name])
                if count:
                    logs[f"loss_{name}"] = round(float(total) / count, 6)
            if self.args.two_stage:
                logs["stage"] = 1.0 if self.current_stage() == "intermediate" else 2.0
            self._component_sums.clear()
            self._component_counts.clear()
        super().log(logs, start_time)

    # ----- saving: checkpoints hold the container, the final folder a bertlite student --------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if _CHECKPOINT_FOLDER.match(os.path.basename(os.path.normpath(output_dir))):
            # Student and projections in one state dict: Trainer's own resume restores both.
            return super()._save(output_dir, state_dict)
        if not self.args.should_save:
            return None
        # Under FSDP / ZeRO-3 Trainer gathered the full state dict of the container: keep the student's part.
        student_state = None if state_dict is None else {
            k[len(_STUDENT):]: v for k, v in state_dict.items() if k.startswith(_STUDENT)}
        tokenizer = self.processing_class or getattr(self.data_collator, "tokenizer", None)
        # safetensors, config, tokenizer and compression_config.json; no pickled training_args.bin.
        save_model_folder(output_dir, self.student, tokenizer, self.compression_record(), state_dict=student_state)
        return None

    def compression_record(self) -> CompressionConfig:
        """What `save_model` writes beside the weights, so every bertlite command and loader accepts the folder."""
        from .config import distillation_params
        from .job import describe_shape

        teacher = teacher_display_name(self.accelerator.unwrap_model(self.teacher))
        record = CompressionConfig(base_model=teacher)
        record.add_step("distillation", teacher=teacher, student_shape=describe_shape(self.student),
                        steps=self.state.global_step, **distillation_params(self.args))
        return record

    def create_model_card(self, language=None, license=None, tags=None, model_name=None, finetuned_from=None,
                          tasks=None, dataset_tags=None, dataset=None, dataset_args=None, **kwargs) -> None:
        """bertlite's card (teacher, losses, student shape, metrics) instead of Trainer's generic one; `push_to_hub`
        calls this after `save_model` wrote the folder it describes."""
        if not self.is_world_process_zero():
            return
        from ..hub.card import render_model_card

        tags = [tags] if isinstance(tags, str) else list(tags or [])
        text = render_model_card(self.args.output_dir, self.hub_model_id, license=license, tags=tags)
        write_text(os.path.join(self.args.output_dir, "README.md"), text)
