"""Distillation inside your own Trainer script: copy this file and change what you need.

    python scripts/distill_with_trainer.py --output_dir my-student --num_train_epochs 3
    accelerate launch scripts/distill_with_trainer.py --output_dir my-student     # several processes / GPUs
    accelerate launch --config_file recipes/accelerate/fsdp.yaml scripts/distill_with_trainer.py --output_dir my-student --bf16
    torchrun --nproc_per_node 2 scripts/distill_with_trainer.py --output_dir my-student --ddp_backend gloo

Every DistillationConfig / TrainingArguments field is a flag (see --help). The teacher here is the packaged
all-MiniLM-L6-v2 fine-tuned on rotten_tomatoes by bertlite (cached in <output_dir>/teacher); use any fine-tuned
BERT-family classifier of your own instead. recipes/accelerate/ holds DDP, FSDP2 and DeepSpeed ZeRO-2/3 configs
(docs/scaling.md). The saved folder is a bertlite model: `bertlite prune`, `quantize` and `push` accept it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, HfArgumentParser  # noqa: E402

from bertlite import DistillationConfig, DistillationTrainer, build_student  # noqa: E402
from bertlite.data import load_task, tokenize  # noqa: E402
from bertlite.distillation.teacher import finetuned_teacher  # noqa: E402
from bertlite.metrics import metric_spec, trainer_compute_metrics  # noqa: E402

(config,) = HfArgumentParser(DistillationConfig).parse_args_into_dataclasses()

# 1. A teacher trained on the task (fine-tuned once, then reused from the cache folder).
teacher_dir = finetuned_teacher("minilm", "rotten_tomatoes", os.path.join(config.output_dir, "teacher"))
teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
tokenizer = AutoTokenizer.from_pretrained(teacher_dir)

# 2. A student: 3 of the teacher's 6 layers (DistilBERT-style initialisation).
student = build_student(teacher, num_layers=3)

# 3. Data, tokenized without padding (the collator pads each batch).
dsd, info = load_task("rotten_tomatoes")
encoded = tokenize(dsd, tokenizer, max_length=128)

# 4. Train: DistillationTrainer is a transformers.Trainer; callbacks, checkpoints, resume, DDP all work as usual.
trainer = DistillationTrainer(
    model=student,
    teacher_model=teacher,
    args=config,
    train_dataset=encoded["train"],
    eval_dataset=encoded["validation"] if config.eval_strategy != "no" else None,
    data_collator=DataCollatorWithPadding(tokenizer),
    processing_class=tokenizer,
    compute_metrics=trainer_compute_metrics(metric_spec("rotten_tomatoes")),
)
trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
trainer.save_model(config.output_dir)  # the student (no projections) and its compression_config.json
print(trainer.evaluate(encoded["test"], metric_key_prefix="test"))
