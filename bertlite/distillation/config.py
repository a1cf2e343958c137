"""`DistillationConfig`: TrainingArguments plus the knobs of knowledge distillation."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from ..errors import BertliteError
from .layer_map import parse_layer_map
from .losses import LAYER_REDUCTIONS

TEACHER_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The loss defaults before issue 18, for what was measured with them and must keep reproducing it (pruning's
# recovery distillation, benchmark scripts): KL*T^2 at T=2, gold labels at 0.5, mapped hidden layers averaged.
EARLIER_DEFAULT_LOSS = dict(temperature=2.0, logit_weight=1.0, hard_label_weight=0.5, embedding_weight=0.0, hidden_weight=1.0,
                            layer_loss_reduction="mean")


@dataclass
class DistillationConfig(TrainingArguments):
    """Training arguments for `DistillationTrainer`. Every loss has its own weight; a weight of 0 turns that
    component off (and skips the work it needs, e.g. eager attention for the attention loss)."""

    # The loss defaults are TextBrewer's example recipe written in bertlite's terms (soft cross-entropy at T=4 is
    # KL*T^2 with weight 1/T^2; hidden states summed over the matched layers, embeddings included) plus the gold
    # labels at weight 1, which the peer's recipe leaves out. Chosen on a held-out quarter of the training split (the
    # validation split had chosen the teacher's checkpoint and favoured copying it) against the peer, the earlier
    # defaults and shrink-and-fine-tune for 3- and 2-layer students: docs/results/peers.md, scripts/bench_peers.py.
    temperature: float = field(default=4.0, metadata={"help": "Softmax temperature for the soft-logit loss (Hinton et al.); > 0. Default 4, as TextBrewer's recipe."})
    logit_weight: float = field(default=0.0625, metadata={"help": "Weight of KL(teacher || student) on temperature-scaled logits, which is scaled by T^2. The default 1/T^2 = 0.0625 makes it the unscaled soft cross-entropy of TextBrewer's recipe (up to the teacher's entropy, a constant)."})
    hard_label_weight: float = field(default=1.0, metadata={"help": "Weight of cross-entropy on the gold labels (skipped for unlabelled batches, e.g. a transfer set). Default 1: the labels next to the teacher's soft targets; 0 learns from the teacher alone."})
    embedding_weight: float = field(default=1.0, metadata={"help": "Weight of the loss between student and teacher embedding outputs (the hidden-state distance of layer 0)."})
    hidden_weight: float = field(default=1.0, metadata={"help": "Weight of the hidden-state loss over the mapped layers."})
    attention_weight: float = field(default=0.0, metadata={"help": "Weight of the attention-map loss over the mapped layers (needs eager attention; slower)."})
    relation_weight: float = field(default=0.0, metadata={"help": "Weight of MiniLMv2's self-attention relation loss: KL(teacher || student) between the query-query, key-key and value-value relations of the student's last layer and the teacher layer the layer map gives it, summed over the three. Needs no eager attention; widths and head counts may differ."})
    relation_heads: int = field(default=0, metadata={"help": "Relation heads of relation_weight (MiniLMv2): each layer's queries, keys and values are split into this many heads before their relations are taken. 0 (default): the teacher's attention head count, or the largest smaller count that divides both models' attention widths (e.g. after head pruning). Set, it must divide both."})
    layer_loss_reduction: str = field(default="sum", metadata={"help": "How the hidden-state and attention losses of the mapped layers are combined: 'sum' (default: each layer pair has the full weight, as TextBrewer's intermediate matches) or 'mean' (the weight is that of the whole stack)."})
    layer_map: str = field(default="uniform", metadata={"help": "Teacher layer each student layer learns from: 'uniform' (layer m <- m*N/M), 'last', 'first', or pairs '1:2,2:4,3:6' (student:teacher, 1-based)."})
    hidden_loss: str = field(default="mse", metadata={"help": "Hidden-state distance: 'mse' (TinyBERT) or 'cosine' (DistilBERT)."})
    attention_loss: str = field(default="kl", metadata={"help": "Attention distance: 'kl' (MiniLM) or 'mse' (TinyBERT)."})
    two_stage: bool = field(default=False, metadata={"help": "TinyBERT two-stage schedule: intermediate layers only for the first `stage_one_fraction` of steps, then the prediction layer."})
    stage_one_fraction: float = field(default=0.5, metadata={"help": "With --two_stage, the fraction of training steps spent on intermediate layers; in (0, 1)."})
    quantization_aware: bool = field(default=False, metadata={"help": "Quantization-aware training: the student's Linear layers run with int8 rounding (straight-through gradients) during distillation, with the default settings of `bertlite quantize`, which then converts the saved student to int8."})
    hub_strategy: str = field(default="end", metadata={"help": "With --push_to_hub: 'end' only. The student is published by save_model/push_to_hub; a checkpoint holds the student with the width projections, which Trainer's other strategies would copy into the published folder."})
    teacher_dtype: str | None = field(default=None, metadata={"help": "Run the frozen teacher in a lower precision than the student to save its memory and time: 'bf16' (GPU, or CPU where torch supports it) or 'fp16' (GPU only). Its outputs are cast to float32 for the losses. Default: the student's precision."})
    save_on_interrupt: bool = field(default=True, metadata={"help": "On Ctrl-C/SIGTERM finish the current step, save a checkpoint and stop, so that re-running resumes without loss."})
    # Optimisation: what `bertlite distill` runs, so that the library and the command train alike (TrainingArguments'
    # own defaults are lr 5e-5, no warm-up, batches of 8 drawn at random). The student learns from its teacher's
    # layers and soft targets and takes a larger step than a fine-tune: 2e-4 was chosen on the held-out split over
    # 1e-4 (ahead at 2 layers, level at 3), while labels alone gained nothing from it (docs/results/peers.md, round 7).
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate of the student. Default 2e-4 (chosen on a held-out split over 1e-4; see docs/results/peers.md)."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Training batch size per device."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up: steps, or a fraction of training when < 1."})
    # Sentences of a batch padded to similar lengths: about half the padded tokens of random batches on
    # rotten_tomatoes, which is what keeps the default run within 15 minutes on 2 CPU cores.
    train_sampling_strategy: str = field(default="group_by_length", metadata={
        "help": "Training sampler: 'group_by_length' (default: shuffled batches of similar lengths, less padding), 'random', "
                "'sequential' or 'batch_rebalance'.", "choices": ["random", "sequential", "group_by_length", "batch_rebalance"]})

    def __post_init__(self):
        if self.output_dir is None:
            self.output_dir = "bertlite-distilled"
        if self.deepspeed and not self.use_cpu and not torch.accelerator.is_available():
            # Without use_cpu, accelerate counts one process on a machine without an accelerator while DeepSpeed
            # sees the whole world, and DeepSpeed's batch-size assertion fails deep inside the teacher's setup.
            raise BertliteError("DeepSpeed on a machine without a GPU needs use_cpu=True (--use_cpu) "
                                "(docs/scaling.md).")
        super().__post_init__()
        if not self.temperature > 0:
            raise BertliteError(f"temperature must be > 0, got {self.temperature}.")
        for name in ("logit_weight", "hard_label_weight", "embedding_weight", "hidden_weight", "attention_weight",
                     "relation_weight", "relation_heads"):
            if getattr(self, name) < 0:
                raise BertliteError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.logit_weight + self.hard_label_weight + self.intermediate_weight == 0:
            raise BertliteError("All loss weights are 0: nothing would be learned.")
        if self.hidden_loss not in ("mse", "cosine"):
            raise BertliteError(f"hidden_loss must be 'mse' or 'cosine', got {self.hidden_loss!r}.")
        if self.attention_loss not in ("kl", "mse"):
            raise BertliteError(f"attention_loss must be 'kl' or 'mse', got {self.attention_loss!r}.")
        if self.layer_loss_reduction not in LAYER_REDUCTIONS:
            raise BertliteError(f"layer_loss_reduction must be 'mean' or 'sum', got {self.layer_loss_reduction!r}.")
        if not 0 < self.stage_one_fraction < 1:
            raise BertliteError(f"stage_one_fraction must be in (0, 1), got {self.stage_one_fraction}.")
        if self.two_stage and self.intermediate_weight == 0:
            raise BertliteError("two_stage needs at least one intermediate loss (embedding, hidden, attention or relation weight > 0).")
        if self.ddp_find_unused_parameters is None:
            # In two-stage stage one the pooler and classifier get no gradient, and DDP must be told to expect
            # that; otherwise every parameter is used and the extra graph traversal would only cost time.
            self.ddp_find_unused_parameters = self.two_stage
        strategy = str(getattr(self.hub_strategy, "value", self.hub_strategy))
        if self.push_to_hub and strategy != "end":
            raise BertliteError(f"hub_strategy {strategy!r} is not supported by DistillationTrainer: use 'end' "
                                "(push_to_hub publishes the student at the end; checkpoints hold student and projections).")
        if self.dataloader_pin_memory and (self.use_cpu or not torch.accelerator.is_available()):
            # Pinned memory only speeds copies to an accelerator: without one torch pins nothing and warns at every
            # DataLoader, so a CPU run would print a warning that asks nothing of the user.
            self.dataloader_pin_memory = False
        self._check_teacher_dtype()
        parse_layer_map(self.layer_map)  # fail at parse time, not after the teacher was loaded

    def _check_teacher_dtype(self) -> None:
        if self.teacher_dtype in (None, "", "none", "same"):
            self.teacher_dtype = None
            return
        if self.teacher_dtype not in TEACHER_DTYPES:
            raise BertliteError(f"teacher_dtype must be 'bf16' or 'fp16' (or unset: the student's precision), got {self.teacher_dtype!r}.")
        on_cpu = self.use_cpu or not torch.cuda.is_available()
        if self.teacher_dtype == "fp16" and on_cpu:
            raise BertliteError("teacher_dtype 'fp16' needs a GPU (CPU fp16 matmuls are missing or very slow): use 'bf16' on CPU.")

    @property
    def teacher_torch_dtype(self) -> torch.dtype | None:
        """The teacher's parameter dtype, or None to leave it as loaded."""
        return TEACHER_DTYPES.get(self.teacher_dtype) if self.teacher_dtype else None

    @property
    def needs_attentions(self) -> bool:
        return self.attention_weight > 0

    @property
    def needs_hidden_states(self) -> bool:
        return self.hidden_weight > 0 or self.embedding_weight > 0

    @property
    def needs_relations(self) -> bool:
        return self.relation_weight > 0

    @property
    def needs_layer_map(self) -> bool:
        """Whether any loss pairs student layers with teacher layers (hidden states, attention maps, relations)."""
        return self.needs_hidden_states or self.needs_attentions or self.needs_relations

    @property
    def intermediate_weight(self) -> float:
        """The summed weight of the losses on intermediate layers (what two_stage's first stage trains)."""
        return self.embedding_weight + self.hidden_weight + self.attention_weight + self.relation_weight


def distillation_params(config: DistillationConfig) -> dict:
    """The settings of a distillation that its compression record keeps (what decides the student it trains)."""
    keys = ("temperature", "logit_weight", "hard_label_weight", "embedding_weight", "hidden_weight", "attention_weight",
            "relation_weight", "relation_heads", "layer_map", "layer_loss_reduction", "hidden_loss", "attention_loss", "two_stage", "stage_one_fraction",
            "num_train_epochs", "learning_rate", "per_device_train_batch_size", "seed", "quantization_aware",
            "teacher_dtype")
    return {k: getattr(config, k) for k in keys}
