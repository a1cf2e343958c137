"""Knowledge distillation: `DistillationConfig` (TrainingArguments plus the loss knobs), `DistillationTrainer`
(a Trainer whose `compute_loss` adds soft targets at every level), pure loss functions (`losses`), layer maps,
students built from the teacher, the teacher fine-tune, ensembles, transfer sets, and the task (`job`) and
general (`general`) distillation jobs behind `bertlite distill`."""

from .config import DistillationConfig
from .student import build_student
from .teacher import finetuned_teacher
from .trainer import DistillationTrainer

__all__ = ["DistillationConfig", "DistillationTrainer", "build_student", "finetuned_teacher"]
